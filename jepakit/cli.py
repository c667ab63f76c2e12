"""The ``jepakit`` command: list components and recipes, show a recipe, train one.

    jepakit list [KIND]
    jepakit show RECIPE [key=value ...]
    jepakit train RECIPE [key=value ...] [--out DIR] [--resume | --overwrite]
    jepakit export CHECKPOINT --format timm [--out DIR]
    jepakit viz masks RECIPE [key=value ...] [--out masks.png]
    jepakit probe SOURCE [key=value ...] [--train N --val N --test N] [--probes ...] [--out DIR]
    jepakit check my_file.py [KIND.FIELD=VALUE ...]
    jepakit import-weights CHECKPOINT --format ijepa|vjepa|vjepa2 --out DIR [key=value ...]
    jepakit push RUN_OR_EXPORT USER/NAME [--private]

``--import MODULE`` (before the command, repeatable) imports a module or a ``.py`` file
first, so that methods, components and recipes a user registers in their own code are
known: ``jepakit --import my_method.py train my-recipe``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jepakit", description="Joint-embedding predictive architectures.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error in your input too")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module or .py file first (your own methods, components, recipes)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="registered recipes and components")
    p_list.add_argument("kind", nargs="?", help="only this component kind")
    p_show = sub.add_parser("show", help="print a recipe's config tree")
    p_show.add_argument("recipe")
    p_show.add_argument("overrides", nargs="*", help="key=value, e.g. predictor.depth=4 or masker=random")
    p_train = sub.add_parser("train", help="train a recipe (default data: the embedded scenes)")
    p_train.add_argument("recipe")
    p_train.add_argument("overrides", nargs="*", help="key=value, e.g. train.steps=100 encoder.depth=6")
    p_train.add_argument("--out", help="run folder (default: runs/RECIPE)")
    p_train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    p_train.add_argument(
        "--overwrite",
        action="store_true",
        help="the run folder holds an earlier run: move it to DIR.replaced-N and start anew (never deleted)",
    )
    p_train.add_argument(
        "--until", type=int, metavar="STEP", help="stop after this step, with a checkpoint; --resume continues exactly"
    )
    p_train.add_argument("--quiet", action="store_true", help="no progress bar")
    p_export = sub.add_parser("export", help="write a checkpoint's target encoder for timm")
    p_export.add_argument("checkpoint")
    p_export.add_argument("--format", choices=["timm"], default="timm")
    p_export.add_argument("--out", help="folder (default: next to the checkpoint, CHECKPOINT-timm)")
    p_viz = sub.add_parser("viz", help="pictures: masks drawn over a batch of the recipe's data")
    p_viz.add_argument("what", choices=["masks"])
    p_viz.add_argument("recipe")
    p_viz.add_argument("overrides", nargs="*", help="key=value, e.g. masker=random image_size=128")
    p_viz.add_argument("--out", default="masks.png", help="PNG to write")
    p_viz.add_argument("--images", type=int, default=8, help="how many images to draw (1 to 64)")
    p_viz.add_argument("--seed", type=int, default=0)
    _add_probe(sub)
    _add_weights_and_check(sub)
    return parser


def _add_probe(sub: Any) -> None:
    """``jepakit probe``'s arguments: the source, data edits, split sizes, probes and the floor."""
    p_probe = sub.add_parser("probe", help="probe a checkpoint's target encoder: linear, kNN, attentive, dense")
    p_probe.add_argument("source", help="checkpoint file, run folder, export folder, or random:RECIPE (the floor)")
    p_probe.add_argument(
        "overrides",
        nargs="*",
        help="data edits, e.g. data.seed=7, or data=imagefolder data.root=DIR data.image_size=64",
    )
    p_probe.add_argument(
        "--train", type=int, help="images the classifiers fit on (default: 3000, or less data's share)"
    )
    p_probe.add_argument("--val", type=int, help="images their settings are chosen on (default: 500, or a share)")
    p_probe.add_argument("--test", type=int, help="images they are scored on (default: 3000, or a share)")
    p_probe.add_argument(
        "--test-data",
        action="append",
        default=[],
        metavar="DIR_OR_EDIT",
        help="a held-out test set: a folder of class folders, or edits of the probe data (data.split=test)",
    )
    p_probe.add_argument("--probes", default="linear,knn,attentive,dense", help="comma-separated subset")
    p_probe.add_argument("--layers", type=int, default=1, help="concatenate the pooled tokens of the last k blocks")
    p_probe.add_argument("--seed", type=int, default=0, help="probe training seed (and random:RECIPE's init seed)")
    p_probe.add_argument("--out", help="folder for probe.json and segmentation.png (default: beside the source)")
    p_probe.add_argument(
        "--floor-seeds",
        type=int,
        default=3,
        help="probe this many randomly initialised encoders of the same architecture too, and print each number "
        "beside their mean ± spread (cached; 0: no floor)",
    )
    p_probe.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_weights_and_check(sub: Any) -> None:
    """``import-weights``, ``push`` and ``check``: weights in and out, and the generated tests on a user's code."""
    p_import = sub.add_parser(
        "import-weights",
        help="read an official I-JEPA / V-JEPA / V-JEPA 2 checkpoint into a jepakit run folder (step 0)",
    )
    p_import.add_argument("checkpoint", help="the official training checkpoint (.pth.tar)")
    p_import.add_argument("--format", required=True, help="ijepa, vjepa or vjepa2")
    p_import.add_argument("--out", required=True, help="the run folder to write (probe it, or train.init_from=DIR)")
    p_import.add_argument("--overwrite", action="store_true", help="move a run already in --out aside first")
    p_import.add_argument("overrides", nargs="*", help="key=value, e.g. encoder.num_heads=8 for an unofficial width")
    p_push = sub.add_parser("push", help="upload a run's encoder with a model card to the Hugging Face hub")
    p_push.add_argument("source", help="run folder, checkpoint or export folder")
    p_push.add_argument("repo", help="USER/NAME on the hub (read back as hf://USER/NAME)")
    p_push.add_argument("--private", action="store_true", help="a private repository")
    p_check = sub.add_parser(
        "check", help="run the registry's generated tests on the components and recipes your own code registers"
    )
    p_check.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help=".py files or modules that register components; KIND.FIELD=VALUE sets a field of that kind's "
        "components, e.g. dataset.root=DIR",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; an error in the user's input (a recipe, field, value, file or checkpoint that does
    not exist or does not fit) prints one line ``jepakit: error: ...`` and returns 2 (``--debug``: the
    traceback). Errors inside jepakit keep their traceback."""
    from .checkpoint import CheckpointError, RunFolderError
    from .config import ConfigError, UnknownChoiceError
    from .data.base import DataError
    from .train.trainer import NonFiniteLossError

    parser = _parser()
    args, extra = parser.parse_known_args(argv)  # key=value overrides may also follow the options
    # argparse gives only the subcommands that take key=value overrides an ``overrides`` attribute
    if extra and (not hasattr(args, "overrides") or not all("=" in e and not e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        from .imports import import_user_code

        for name in args.imports:
            import_user_code(name)
        return COMMANDS[args.command](args)
    except (
        ConfigError,
        UnknownChoiceError,
        FileNotFoundError,
        RunFolderError,
        CheckpointError,
        NonFiniteLossError,
        DataError,
    ) as e:
        if args.debug:
            raise
        message = " ".join(str(e).split())  # one line
        print(f"jepakit: error: {message}", file=sys.stderr)
        return 1 if isinstance(e, (CheckpointError, NonFiniteLossError)) else 2


def _list(args: argparse.Namespace) -> int:
    from . import list_components, list_recipes
    from .registry import recipe_entry

    if args.kind is None:
        print("recipes:")
        for name in list_recipes():
            print(f"  {name:24s} {recipe_entry(name).help}")
    for kind, names in list_components(args.kind).items():
        if names:
            print(f"{kind}: {', '.join(names)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from . import describe, get_config, list_recipes
    from .registry import recipe_entry

    departures = recipe_entry(args.recipe).departures if args.recipe in list_recipes() else ()
    describe(get_config(args.recipe, *args.overrides), departures=departures)
    return 0


def _train(args: argparse.Namespace) -> int:
    from . import get_config
    from .imports import import_recorded, recorded_name
    from .train import train
    from .train.signals import EXIT_STOPPED

    out = args.out or f"runs/{args.recipe}"
    saved = Path(out) / "config.json"
    before = json.loads(saved.read_text()).get("imports", []) if args.resume and saved.is_file() else []
    import_recorded(before, out)  # the code the run was made with, before its recipe is looked up
    cfg = get_config(args.recipe, *args.overrides)
    imports = list(dict.fromkeys([*before, *(recorded_name(name) for name in args.imports)]))
    launched = _init_distributed()
    try:
        result = train(
            cfg,
            out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.quiet,
            log=print,
            until=args.until,
            imports=imports,
            recipe=args.recipe,
        )
    finally:
        if launched:
            import torch.distributed as dist

            dist.destroy_process_group()
    if result["stopped"]:  # every rank exits alike, so torchrun reports the stop
        return EXIT_STOPPED
    if result.get("rank", 0) != 0:
        return 0
    losses = result["losses"]
    if losses:
        k = max(1, len(losses) // 10)
        print(f"loss {sum(losses[:k]) / k:.4f} (first {k} steps) -> {sum(losses[-k:]) / k:.4f} (last {k})")
    print(f"checkpoint: {result['checkpoint']}\nlog: {result['log']}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_timm
    from .runs import weights_read

    print(f"exporting {weights_read(args.checkpoint)}")
    out = export_timm(args.checkpoint, args.out or f"{args.checkpoint}-timm")
    meta = json.loads((out / "config.json").read_text())
    print(
        f"wrote {out / 'model.safetensors'}; load with timm.create_model({meta['timm_model']!r}, "
        f"pretrained=False, checkpoint_path=..., **config.json['timm_kwargs'])"
    )
    return 0


#: The most images the probes' three splits may ask for (their features are held in memory together).
PROBE_MAX_IMAGES = 200_000
#: The most images ``viz`` draws in its one picture (more would only take memory and time).
VIZ_MAX_IMAGES = 64


def _viz(args: argparse.Namespace) -> int:
    """Draw a batch of the recipe's data with the masks its method draws for it."""
    import torch

    from . import get_config
    from .config import ConfigError
    from .eval.features import sample_input
    from .methods.base import Draw
    from .viz import mask_overlay, save_png

    if not 1 <= args.images <= VIZ_MAX_IMAGES:
        raise ConfigError(f"--images={args.images}: draw 1 to {VIZ_MAX_IMAGES} images (one picture of a grid of them)")
    if Path(args.out).suffix.lower() != ".png" or Path(args.out).is_dir():
        raise ConfigError(f"--out={args.out}: name a .png file to write (an existing PNG is replaced)")
    cfg = get_config(args.recipe, *args.overrides)
    data = cfg.data.build()
    samples = [s for s in (data[i] for i in range(min(args.images, len(data)))) if s is not None]
    n = len(samples)
    if not n:
        raise ConfigError(f"none of the first {args.images} samples of data {cfg.data.name!r} could be read")
    draw = Draw(seed=args.seed, epoch=0, step=0, micro=0, indices=torch.arange(n), rows=torch.arange(n), size=n)
    method = cfg.build()
    method.prepare(data)
    batch = method.make_batch(samples, draw)
    if "masks" not in batch:
        raise ConfigError(f"method {cfg.method.name!r} draws no masks")
    images = torch.stack([sample_input(s) for s in samples])  # uncropped: the masks show on the whole image
    patch = cfg.method.provides()["patch_size"][0]
    columns = images.shape[2] if images.ndim == 5 else 4  # a clip: one row of its frames
    path = save_png(mask_overlay(images, batch["masks"], patch), args.out, columns=columns)
    rows = "; a row per clip, frame by frame" if images.ndim == 5 else ""
    print(f"wrote {path} ({batch['masks'].targets.shape[1]} target blocks; dimmed: outside the context{rows})")
    return 0


def _probe(args: argparse.Namespace) -> int:
    """Probe the evaluated encoder on the probe sets its data declares (new draws, a test split, or
    --test-data); writes probe.json, whose "held_out" says whether pretraining read the test images,
    and a segmentation overlay."""

    from rich.console import Console

    from .config import ConfigError
    from .eval import evaluate, probe_data, random_floor, results_table, summary
    from .eval.splits import DEFAULT_SPLITS

    if args.floor_seeds < 0:
        raise ConfigError(f"--floor-seeds={args.floor_seeds} must be 0 (no floor) or more")
    probes = [p for p in args.probes.split(",") if p]
    sizes = (args.train, args.val, args.test)
    need = sum(s if s is not None else d for s, d in zip(sizes, DEFAULT_SPLITS, strict=True))
    if need > PROBE_MAX_IMAGES:
        raise ConfigError(
            f"--train, --val and --test ask for {need} images: the probes hold the features of every one; "
            f"ask for at most {PROBE_MAX_IMAGES} in all"
        )
    encoder, cfg, out = _probe_source(args)
    sets = probe_data(cfg, encoder, args.overrides, images=need, test_data=args.test_data)
    data = sets.fit.build()
    test = sets.test.build() if sets.test is not None else None
    settings = dict(train=args.train, val=args.val, test=args.test, layers=args.layers, probes=probes, seed=args.seed)
    results = evaluate(encoder, data, test_data=test, log=print, progress=not args.quiet, **settings)
    results.update(held_out=sets.held_out, held_out_why=sets.why)
    floor = None
    if args.floor_seeds and cfg is not None and not args.source.startswith("random:"):
        floor = random_floor(
            cfg.method.eval_encoder()[0],
            sets.fit,
            test_set=sets.test,
            seeds=range(args.floor_seeds),
            built=(data, test),
            log=print,
            progress=not args.quiet,
            **settings,
        )
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(results_table(results, floor))
    out.mkdir(parents=True, exist_ok=True)
    written = summary(results)
    if floor is not None:
        written["random_floor"] = {k: floor[k] for k in ("seeds", "mean", "std")}
        written["diagnosis"] = _diagnosis(results, floor, cfg, out)
        for line in written["diagnosis"]:
            print(line)
    rows, tested = results["details"]["test_rows"], results["details"]["test_data"]
    if cfg is not None and cfg.method.joint_embedding() and not args.source.startswith("random:"):
        from .eval.image_text import image_text, image_text_table
        from .runs import load_method

        written["image_text"] = image_text(load_method(args.source), tested, rows.tolist())
        console.print(image_text_table(written["image_text"]))
    (out / "probe.json").write_text(json.dumps(written, indent=2))
    print(f"wrote {out / 'probe.json'}")
    dense = results["details"].get("dense")
    if dense is not None:
        from .eval.features import first_frames
        from .viz import save_png, segmentation_overlay

        images, target = first_frames(tested, rows.tolist(), 8)
        pictures = segmentation_overlay(images, target, dense["prediction"][: len(images)].long())
        print(f"wrote {save_png(pictures, out / 'segmentation.png', columns=6)} (image, truth, prediction)")
    return 0


def _diagnosis(results: dict[str, Any], floor: dict[str, Any], cfg: Any, out: Path) -> list[str]:
    """``diagnose.probe_diagnosis`` of a probe against its floor, citing the run's collapse warnings."""
    from .diagnose import probe_diagnosis, remedies
    from .train.loggers import read_jsonl

    log = out / "log.jsonl"
    events = read_jsonl(log) if log.is_file() else []
    warned = [int(e["step"]) for e in events if "warning: collapse" in str(e.get("event", ""))]
    return probe_diagnosis(results, floor, remedies(cfg.method, cfg.train), warned, cfg.train.collapse_drop)


def _probe_source(args: argparse.Namespace) -> tuple[Any, Any, Path]:
    """(the encoder to probe, its experiment or None, the folder the results go to) of ``probe SOURCE``."""
    from . import get_config
    from .eval import random_encoder
    from .runs import load_eval_encoder, weights_read

    if args.source.startswith("random:"):
        cfg = get_config(args.source.split(":", 1)[1])
        print(f"probing a randomly initialised encoder of {cfg.method.name} (init seed {args.seed})")
        return (
            random_encoder(cfg.method.eval_encoder()[0], args.seed),
            cfg,
            Path(args.out or f"runs/{args.source.replace(':', '-')}"),
        )
    from .hub import hub_repo

    print(f"probing {weights_read(args.source)}")
    encoder, experiment = load_eval_encoder(args.source)
    src, hub = Path(args.source), hub_repo(args.source)
    if args.out:
        return encoder, experiment, Path(args.out)
    if hub is not None:  # never into the hub's cache
        return encoder, experiment, Path(f"runs/hf-{hub[0].replace('/', '-')}")
    return encoder, experiment, src if src.is_dir() else src.parent


def _import_weights(args: argparse.Namespace) -> int:
    from .official import import_weights

    written = import_weights(args.checkpoint, args.format, args.out, args.overrides, overwrite=args.overwrite)
    print(
        f"wrote {written} ({args.format} weights of {args.checkpoint}); probe it with jepakit probe {args.out}, "
        f"train from it with train.init_from={args.out}, or teach with target_updater.checkpoint={args.out}"
    )
    return 0


def _push(args: argparse.Namespace) -> int:
    from .publish import push

    print(f"pushed {args.source} to {push(args.source, args.repo, private=args.private)}; read it as hf://{args.repo}")
    return 0


def _check(args: argparse.Namespace) -> int:
    """The generated tests on what each file registers: a line per component or recipe; 1 if one fails."""
    from .check import Outcome, check_file
    from .config import ConfigError, parse_cli_overrides
    from .registry import KINDS

    fields = parse_cli_overrides(f for f in args.files if "=" in f)
    for kind, edits in fields.items():
        if kind not in KINDS or not isinstance(edits, dict):
            raise ConfigError(f"{kind}={edits}: edits are KIND.FIELD=VALUE, KIND one of {', '.join(KINDS)}")

    def show(o: Outcome) -> None:
        print(f"  {'ok  ' if o.passed else 'FAIL'}  {o.what} ({o.seconds:.1f} s){': ' + o.error if o.error else ''}")

    outcomes = []
    for name in (f for f in args.files if "=" not in f):
        print(f"checking what {name} registers: build, forward, backward, gradients, determinism, config round trip")
        outcomes += check_file(name, fields, log=show)
    failed = sum(not o.passed for o in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


COMMANDS = {
    "list": _list,
    "show": _show,
    "train": _train,
    "export": _export,
    "viz": _viz,
    "probe": _probe,
    "check": _check,
    "import-weights": _import_weights,
    "push": _push,
}


def _init_distributed() -> bool:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, else gloo)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


if __name__ == "__main__":
    sys.exit(main())
