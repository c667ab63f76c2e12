"""``jepakit push``: a run's encoder, with a model card, to the Hugging Face hub.

``push`` writes what a user shares, an export folder (the evaluated encoder's safetensors and its
config) with a model card (the recipe, where it departs from its paper, the probe table against
the random-init floor when the run was probed, the loss curves), and uploads it in one commit
through ``huggingface_hub``; ``hf://user/name`` (``jepakit.hub``) reads it back.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .config import ConfigError, MissingFileError

__all__ = ["model_card", "push"]


def model_card(export: Path, run: Path | None) -> str:
    """A model card (README.md) for the export folder ``export`` of ``run``: what it is, its recipe and
    the recipe's departures from its paper, the probe table with the floor, the curves."""
    from .registry import list_recipes, recipe_entry

    meta = json.loads((export / "config.json").read_text())
    saved = json.loads((run / "config.json").read_text()) if run is not None and (run / "config.json").is_file() else {}
    recipe = saved.get("recipe")
    enc = meta["encoder"]
    lines = [
        "---",
        "library_name: jepakit",
        "tags: [self-supervised-learning, jepa, vision-transformer]",
        "---",
        f"# {recipe or 'jepakit encoder'}",
        "",
        f"A ViT ({enc.get('embed_dim')} wide, {enc.get('depth')} blocks, {enc.get('patch_size')} px patches) trained "
        f"with jepakit{f' recipe `{recipe}`' if recipe else ''}; the weights are the run's evaluated encoder "
        f"({meta.get('source', {}).get('weights', 'its encoder')}), step {meta.get('source', {}).get('step', '?')}.",
        "",
        "```python",
        "import timm",
        f"model = timm.create_model({meta['timm_model']!r}, pretrained=False, **config['timm_kwargs'])  # config.json",
        "```",
        "",
        "It reads `hf://USER/NAME` wherever jepakit reads a run: `jepakit probe hf://USER/NAME`.",
    ]
    if recipe in list_recipes() and recipe_entry(recipe).departures:
        lines += [
            "",
            "## Where the recipe departs from its paper",
            "",
            "| field | paper | ours | why |",
            "|---|---|---|---|",
        ]
        lines += [f"| {d.field} | {d.paper} | {d.ours} | {d.why} |" for d in recipe_entry(recipe).departures]
    probe = run / "probe.json" if run is not None else None
    if probe is not None and probe.is_file():
        lines += ["", "## Probes (held-out test split)", "", *_probe_table(json.loads(probe.read_text()))]
    if run is not None and (run / "curves.png").is_file():
        lines += ["", "## Training curves", "", "![curves](curves.png)"]
    return "\n".join(lines) + "\n"


def _probe_table(probe: dict[str, Any]) -> list[str]:
    """Rows of probe x task: the run's score and the random-init floor's mean ± std, when probed with one."""
    floor = probe.get("random_floor", {})
    rows = ["| probe | task | score | random init |", "|---|---|---|---|"]
    for name in ("linear", "knn", "attentive"):
        for task, score in probe.get(name, {}).items():
            base = floor.get("mean", {}).get(f"{name}/{task}")
            spread = floor.get("std", {}).get(f"{name}/{task}")
            shown = f"{base:.3f} ± {spread:.3f}" if base is not None and spread is not None else "-"
            rows.append(f"| {name} | {task} | {score:.3f} | {shown} |")
    return rows


def push(source: str | Path, repo_id: str, private: bool = False, api: Any = None) -> str:
    """Export ``source`` (a run folder or checkpoint; an export folder as it is) with a model card, and
    upload it to ``repo_id``; returns the commit's URL. ``api``: a ``huggingface_hub.HfApi`` (its token)."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
    from huggingface_hub.utils import validate_repo_id

    from .checkpoint import is_export, resolve_checkpoint
    from .export import export_timm

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ConfigError(f"push {repo_id!r}: not a hub repository id (USER/NAME): {e}") from None
    path = Path(source)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "export"
        run = None
        if is_export(path):
            shutil.copytree(path, staged)
        else:
            run = path if path.is_dir() else resolve_checkpoint(path).parent.parent
            export_timm(path, staged)
        for extra in ("curves.png", "probe.json"):
            if run is not None and (run / extra).is_file():
                shutil.copy(run / extra, staged / extra)
        (staged / "README.md").write_text(model_card(staged, run))
        api = api or HfApi()
        files = [CommitOperationAdd(f.name, str(f)) for f in sorted(staged.iterdir())]
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.create_commit(repo_id, operations=files, commit_message=f"jepakit push {path.name}")
        except (OfflineModeIsEnabled, HfHubHTTPError, OSError) as e:
            raise MissingFileError(
                f"push to {repo_id}: the hub refused or cannot be reached: {' '.join(str(e).split())[:300]}"
            ) from None
    # huggingface_hub >= 0.19 returns a CommitInfo (its commit_url), older versions the URL itself
    return str(getattr(info, "commit_url", info))
