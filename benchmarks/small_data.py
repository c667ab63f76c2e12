"""Small real data: the JEPA-family CPU recipes on the real image sets that install with jepakit.

Every run pretrains a ``*-cpu`` recipe, as a user would run it (no tuning), on the train split of a
packaged set (``data=digits``, ``faces``, ``textures``: docs/methods.md), and probes its evaluated
encoder on that set: the classifiers fit on the train split and are scored on the held-out test
split, which pretraining never read. Per run: linear, kNN and attentive accuracy, the effective rank
of the test features, whether the trainer's collapse warning fired, the CPU minutes of training
(process CPU time, all threads), and kNN at four checkpoints along the run (score against CPU minutes).
``random`` is the floor: the same encoder at its initialisation, per seed.

    python benchmarks/small_data.py list                       # the plan, and what is done
    python benchmarks/small_data.py run SET METHOD [SEED ...]  # train + probe (default seeds 0 1 2)
    python benchmarks/small_data.py all                        # every run not done yet, then the table
    python benchmarks/small_data.py table                      # RESULTS.md section and the plots
    python benchmarks/small_data.py screen SET METHOD key=value ... [--seed N]  # a tuning step

Runs live in ``benchmarks/small_data_runs/SET/METHOD-sSEED`` (not committed); each finished run adds a
line to ``benchmarks/small_data_results.jsonl`` (committed), from which ``table`` is built; a screen (one
seed, overrides of the recipe: how a recipe is tuned) adds one to ``benchmarks/small_data_screens.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

from _common import mean_std, record, records, section_notes, table

HERE = Path(__file__).resolve().parent
RUNS = HERE / "small_data_runs"
RESULTS = HERE / "small_data_results.jsonl"
SCREENS = HERE / "small_data_screens.jsonl"
TITLE = "Small real data: the JEPA family against the random-init floor"

SETS = ("digits", "faces", "textures")
#: Method -> the CPU recipe it runs (``random``, ``random-xavier``: that recipe's encoder, untrained).
METHODS = {
    "random": "ijepa-cpu",
    "random-xavier": "ijepa-cpu",
    "ijepa": "ijepa-cpu",
    "c-jepa": "c-jepa-cpu",
    "lejepa": "lejepa-cpu",
    "data2vec": "data2vec-cpu",
    "mae": "mae-cpu",
    "salt": "salt-cpu",
}
#: The peers' own training code (``small_data_peers.py``), probed alike.
PEERS = ("lightly-ijepa", "lightly-random", "lightly-simclr", "spt-ijepa", "spt-lejepa")
#: What a method's recipe changes beside the recipe it runs: the floor of MAE's xavier-uniform init.
EDITS: dict[str, tuple[str, ...]] = {"random-xavier": ("encoder.init=xavier",)}
#: The untrained methods: the floors.
UNTRAINED = ("random", "random-xavier")
#: Methods that start from another init than the I-JEPA recipes' truncated normal (MAE's recipe and lightly's
#: masked ViT: xavier-uniform), beside the untrained row of that init: their own floor. The others are read
#: against ``random``.
FLOORS = {"mae": "random-xavier", "lightly-ijepa": "lightly-random"}
SEEDS = (0, 1, 2)
#: Checkpoints probed along a run (kNN), for the score-against-CPU-minutes curve.
CURVE = 4
PROBES = ("linear", "knn", "attentive")


def config(dataset: str, method: str, seed: int, edits: tuple[str, ...] = ()) -> Any:
    """The recipe of ``method`` on ``dataset``'s train split, seeded, checkpointing ``CURVE`` times;
    ``edits``: command-line overrides of the recipe (a screen's)."""
    from jepakit import get_config

    cfg = get_config(get_config(METHODS[method], data=dataset), *EDITS.get(method, ()), *edits)
    every = max(1, (cfg.train.steps or 0) // CURVE)  # the CPU recipes give steps
    seeded: dict[str, Any] = {"train": {"seed": seed, "checkpoint_every": every, "keep_checkpoints": CURVE}}
    if cfg.teacher_run is not None:  # SALT's teacher takes the run's seed and data too
        seeded["teacher_run"] = get_config(cfg.teacher_run, data=dataset, train={"seed": seed})
    return get_config(cfg, **seeded)


def probe_run(
    row: dict[str, Any], data: Any, final: Any, snapshots: list[tuple[int, float, Any]], results: Path
) -> dict[str, Any]:
    """Complete ``row`` with kNN at each ``(step, CPU minutes, encoder)`` snapshot (the curve) and every probe
    of the ``final`` encoder, on the train split of ``data`` (a data config: the classifiers' images) and its
    held-out test split; append it to ``results``. The peers' runs are probed by this too."""
    from jepakit.eval import evaluate, summary

    fit, test = data.build(), data.replace(split="test").build()
    row["curve"] = [
        [step, minutes, evaluate(enc.eval(), fit, test_data=test, probes=("knn",), lidar_views=None)["knn"]["label"]]
        for step, minutes, enc in snapshots
    ]
    probed = summary(evaluate(final.eval(), fit, test_data=test, probes=PROBES, lidar_views=None, seed=row["seed"]))
    row["probe"] = probed
    with results.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{row['set']}/{row['method']}-s{row['seed']}: {json.dumps(probed)}", flush=True)
    return row


def measure(
    dataset: str, method: str, seed: int, edits: tuple[str, ...] = (), results: Path = RESULTS
) -> dict[str, Any]:
    """Train (unless the floor) and probe one run; append its row to ``results``."""
    from jepakit.checkpoint import CheckpointManager
    from jepakit.eval import random_encoder
    from jepakit.runs import checkpoint_encoder, load_run
    from jepakit.train import train

    cfg = config(dataset, method, seed, edits)
    tag = f"{method}-{'-'.join(edits)}" if edits else method
    if len(tag) > 120:  # a folder name the file system takes: the edits' start and a digest of them all
        tag = f"{tag[:80]}-{hashlib.sha1(tag.encode()).hexdigest()[:12]}"
    out = RUNS / dataset / f"{tag.replace('/', '_')}-s{seed}"
    row: dict[str, Any] = {"set": dataset, "method": method, "seed": seed, "recipe": METHODS[method]}
    if edits:
        row["overrides"] = list(edits)
    if method in UNTRAINED:
        row |= {"steps": 0, "cpu_minutes": 0.0, "collapse_warning": False}
        return probe_run(row, cfg.data, random_encoder(cfg.method.eval_encoder()[0], seed), [], results)
    cpu, wall = time.process_time(), time.perf_counter()
    result = train(cfg, out, overwrite=True, progress=False)
    row["cpu_minutes"] = round((time.process_time() - cpu) / 60, 3)
    row["wall_minutes"] = round((time.perf_counter() - wall) / 60, 3)
    row["collapse_warning"] = "warning: collapse" in Path(result["log"]).read_text()
    total = result["steps"] + (cfg.teacher_run.train.steps if cfg.teacher_run is not None else 0)
    row["steps"] = total
    snapshots = []
    for step, path in CheckpointManager(out / "checkpoints").checkpoints():
        done = total - result["steps"] + step  # SALT: the teacher's steps came first
        snapshots.append((step, round(row["cpu_minutes"] * done / total, 3), checkpoint_encoder(*load_run(path))[0]))
    return probe_run(row, cfg.data, checkpoint_encoder(*load_run(out))[0], snapshots, results)


def rows() -> list[dict[str, Any]]:
    """Every recorded row, the newest of each (set, method, seed)."""
    newest = {(r["set"], r["method"], r["seed"]): r for r in records(RESULTS)}
    return list(newest.values())


def _stat(values: list[float]) -> str:
    return mean_std(values, " (1 seed)")


def set_table(dataset: str, found: list[dict[str, Any]]) -> str:
    """One set's table: per method, the probes (mean ± seed spread), the effective rank, CPU minutes,
    collapse warnings, and whether linear and kNN beat the floor by more than twice the larger seed spread
    (the floor's or the method's: a difference within either is no difference)."""
    mine = [r for r in found if r["set"] == dataset]
    lines = []
    for method in (*METHODS, *PEERS):
        runs = [r for r in mine if r["method"] == method]
        if not runs:
            continue
        own = FLOORS.get(method, "random")
        floor = {p: [r["probe"][p]["label"] for r in mine if r["method"] == own] for p in PROBES}
        scores = {p: [r["probe"][p]["label"] for r in runs] for p in PROBES}
        beats = [
            p
            for p in ("linear", "knn")
            if method not in (*UNTRAINED, *FLOORS.values())
            and len(floor[p]) > 1
            and len(scores[p]) > 1
            and statistics.mean(scores[p]) - statistics.mean(floor[p])
            > 2 * max(statistics.stdev(floor[p]), statistics.stdev(scores[p]))
        ]
        rank = [r["probe"]["monitors"]["effective_rank"] for r in runs]
        cpu = [r["cpu_minutes"] for r in runs]
        warned = "n/a" if method in PEERS else f"{sum(r['collapse_warning'] for r in runs)} of {len(runs)}"
        verdict = "-" if method in (*UNTRAINED, *FLOORS.values()) else ", ".join(beats) or "neither"
        verdict += f" (its floor: {own})" if own != "random" else ""
        cells = [*(_stat(scores[p]) for p in PROBES), _stat(rank), f"{statistics.mean(cpu):.1f}"]
        lines.append([method, len(runs), *cells, warned, verdict])
    header = ["method", "seeds", *PROBES, "effective rank", "CPU min", "collapse warned", "beats the floor"]
    return table(header, lines)


def plot(dataset: str, found: list[dict[str, Any]], path: Path) -> Path:
    """kNN on the test split against CPU minutes of training, per method (mean over seeds), and the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    mine = [r for r in found if r["set"] == dataset]
    for method, style in (("random", "--"), *((f, "-.") for f in FLOORS.values())):
        floor = [r["probe"]["knn"]["label"] for r in mine if r["method"] == method]
        if floor:
            ax.axhline(statistics.mean(floor), color="grey", linestyle=style, label=f"{method} (untrained)")
    for method in (*METHODS, *PEERS):
        if method in FLOORS.values():
            continue
        curve = mean_curve([r for r in mine if r["method"] == method])
        if curve:
            minutes, knn = zip(*curve, strict=True)
            ax.plot(minutes, knn, marker="o", label=method, linestyle=":" if method in PEERS else "-")
    ax.set_xlabel("CPU minutes of training")
    ax.set_ylabel("kNN accuracy (held-out test split)")
    ax.set_title(f"data={dataset}")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def mean_curve(runs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(CPU minutes, kNN) at each snapshot, averaged over the runs (seeds) of one method."""
    curves = [r["curve"] for r in runs if r["curve"]]
    if not curves:
        return []
    points = min(len(c) for c in curves)
    return [(statistics.mean(c[i][1] for c in curves), statistics.mean(c[i][2] for c in curves)) for i in range(points)]


def minutes_to(curve: list[tuple[float, float]], target: float) -> float | None:
    """The CPU minutes at which ``curve`` first reaches ``target`` (linear between snapshots; from 0 minutes at
    the first snapshot's score), or None if it never does."""
    before = (0.0, curve[0][1]) if curve else (0.0, 0.0)
    for minutes, knn in curve:
        if knn >= target:
            (m0, k0) = before
            return m0 + (minutes - m0) * ((target - k0) / (knn - k0) if knn > k0 else 1.0)
        before = (minutes, knn)
    return None


def time_to_quality(dataset: str, found: list[dict[str, Any]]) -> str:
    """The best peer's final kNN (mean over its seeds) and its CPU minutes; for each jepakit method, the CPU
    minutes its mean curve needs to reach that score and the speed-up over the peer (goal: 1.5x)."""
    mine = [r for r in found if r["set"] == dataset]
    peers = {p: [r for r in mine if r["method"] == p] for p in PEERS if p not in FLOORS.values()}
    peers = {p: runs for p, runs in peers.items() if runs}
    if not peers:
        return "No peer rows yet."
    best = max(peers, key=lambda p: statistics.mean(r["probe"]["knn"]["label"] for r in peers[p]))
    target = statistics.mean(r["probe"]["knn"]["label"] for r in peers[best])
    theirs = statistics.mean(r["cpu_minutes"] for r in peers[best])
    lines = []
    for method in METHODS:
        curve = mean_curve([r for r in mine if r["method"] == method])
        if method in UNTRAINED or not curve:
            continue
        reached = minutes_to(curve, target)
        cells = ["not reached", "-"] if reached is None else [f"{reached:.2f}", f"{theirs / reached:.2f}x"]
        lines.append([method, *cells])
    head = f"Time to the best peer's kNN ({best}: {target:.3f} in {theirs:.2f} CPU minutes, its final snapshot)"
    return head + ":\n\n" + table(["method", "CPU minutes to reach it", "speed-up over the peer"], lines)


def screens() -> list[dict[str, Any]]:
    """Every recorded screen (one seed of a recipe or peer with overrides: a tuning step)."""
    return records(SCREENS)


def tuning(dataset: str, found: list[dict[str, Any]], tried: list[dict[str, Any]]) -> str:
    """The tuning budget each method and peer got on ``dataset``: how many screens, the best screen's kNN and
    overrides, beside its 3-seed default's kNN (a screen is one seed: a lead, not a result)."""
    lines = []
    for method in (*METHODS, *PEERS):
        if method in (*UNTRAINED, *FLOORS.values()):
            continue
        mine = [r for r in tried if r["set"] == dataset and r["method"] == method]
        default = [r["probe"]["knn"]["label"] for r in found if r["set"] == dataset and r["method"] == method]
        if not mine and not default:
            continue
        best = max(mine, key=lambda r: r["probe"]["knn"]["label"], default=None)
        cells = ["-", "-"] if best is None else [f"{best['probe']['knn']['label']:.3f}", " ".join(best["overrides"])]
        lines.append([method, len(mine), _stat(default) if default else "-", *cells])
    header = ["method", "screens", "kNN, defaults (3 seeds)", "best screen's kNN (1 seed)", "its overrides"]
    return "Tuning budget (`small_data.py screen`, `small_data_peers.py run --screen`):\n\n" + table(header, lines)


def write_table() -> None:
    found, tried = rows(), screens()
    parts = []
    for dataset in SETS:
        if not any(r["set"] == dataset for r in found):
            continue
        picture = plot(dataset, found, HERE / f"small_data_{dataset}.png")
        tables = f"{set_table(dataset, found)}\n\n{time_to_quality(dataset, found)}\n\n{tuning(dataset, found, tried)}"
        parts.append(f"### data={dataset}\n\n![{dataset}]({picture.name})\n\n{tables}")
    command = (
        "python benchmarks/small_data.py all; python -m venv spt && spt/bin/pip install stable-pretraining; "
        "SPT_PYTHON=spt/bin/python python benchmarks/small_data_peers.py run SET PEER (each set and peer); "
        "python benchmarks/small_data.py table"
    )
    notes = section_notes(TITLE)  # the hand-written status and reading below the last table stay
    record(TITLE, f"`{command}`\n\n" + "\n\n".join(parts) + (f"\n\n{notes}" if notes else ""))


def planned() -> list[tuple[str, str, int]]:
    return [(s, m, seed) for s in SETS for m in METHODS for seed in SEEDS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    p_run = sub.add_parser("run")
    p_run.add_argument("set", choices=SETS)
    p_run.add_argument("method", choices=list(METHODS))
    p_run.add_argument("seeds", nargs="*", type=int, default=list(SEEDS))
    sub.add_parser("all")
    sub.add_parser("table")
    p_screen = sub.add_parser("screen")
    p_screen.add_argument("set", choices=SETS)
    p_screen.add_argument("method", choices=list(METHODS))
    p_screen.add_argument("edits", nargs="+", help="key=value overrides of the recipe")
    p_screen.add_argument("--seed", type=int, default=0, help="the run's seed (a screen at more seeds: once each)")
    args = parser.parse_args()
    done = {(r["set"], r["method"], r["seed"]) for r in rows()}
    if args.command == "list":
        for key in planned():
            print(("done  " if key in done else "to do ") + "/".join(map(str, key)))
    elif args.command == "run":
        for seed in args.seeds:
            measure(args.set, args.method, seed)
    elif args.command == "screen":
        measure(args.set, args.method, args.seed, tuple(args.edits), SCREENS)
    elif args.command == "all":
        for key in planned():
            if key not in done:
                measure(*key)
        write_table()
    else:
        write_table()


if __name__ == "__main__":
    main()
