"""The training engine: logs, checkpoints, exact resume, non-finite losses, the CLI."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch

from jepakit import ConfigError
from jepakit.cli import main
from jepakit.train import NonFiniteLossError, train
from jepakit.train.pipeline import EpochOrder, micro_batches

from conftest import tiny_config

TRAIN = {"steps": 6, "batch_size": 4, "warmup_steps": 2, "log_every": 2, "monitor_every": 3, "checkpoint_every": 3}


def experiment(recipe: str = "ijepa", **overrides):
    merged = {"masker": {"min_keep": 4}, "data": {"size": 16}, "train": TRAIN, **overrides}
    return tiny_config(recipe, **merged)


def test_a_run_writes_config_log_and_checkpoints(tmp_path):
    cfg = experiment()
    result = train(cfg, tmp_path, progress=False)
    assert len(result["losses"]) == 6 and all(torch.isfinite(torch.tensor(result["losses"])))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["type"], saved["version"], saved["method"]["type"]) == ("experiment", 4, "method/jepa")
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 3, 4, 6], "every log_every steps, and the monitor steps"
    assert {"loss", "predict", "lr", "weight_decay", "ema_momentum", "images_per_s"} <= set(records[-1])
    assert {"effective_rank", "centred_rank", "embedding_std"} <= set(records[-1])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000003.pt", "step-00000006.pt"]
    assert (tmp_path / "curves.png").is_file() and any((tmp_path / "tensorboard").iterdir()), "the default loggers"


@pytest.mark.parametrize(
    "recipe, overrides",
    [("ijepa", {}), ("tc-jepa", {}), ("ijepa", {"encoder": {"drop_path_rate": 0.3}})],
    ids=["ijepa", "tc-jepa", "ijepa-drop-path"],
)
def test_resumed_run_is_bitwise_identical_to_a_straight_run(tmp_path, recipe, overrides):
    cfg = experiment(recipe, **overrides)
    straight = train(cfg, tmp_path / "straight", progress=False)["model"].state_dict()
    train(cfg, tmp_path / "resumed", progress=False, until=3)
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False)
    assert len(resumed["losses"]) == 3
    state = resumed["model"].state_dict()
    assert state.keys() == straight.keys()
    assert all(torch.equal(state[k], straight[k]) for k in state)


def test_resume_refuses_a_different_config(tmp_path):
    train(experiment(), tmp_path, progress=False, until=3)
    with pytest.raises(ConfigError, match=r"predictor"):
        train(experiment(predictor={"depth": 1}), tmp_path, resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint"):
        train(experiment(), tmp_path / "empty", resume=True, progress=False)


def test_a_non_finite_loss_stops_naming_step_and_checkpoint_or_is_skipped(tmp_path, monkeypatch):
    from jepakit.methods.jepa import JEPA

    real = JEPA.forward

    def poisoned(self, images, masks, text=None, step=None):
        out = real(self, images, masks, text, step)
        return {**out, "loss": out["loss"] * float("nan")} if step == 4 else out

    monkeypatch.setattr(JEPA, "forward", poisoned)
    threads = threading.active_count()
    with pytest.raises(NonFiniteLossError, match=r"step 4.*step-00000003\.pt"):
        train(experiment(train={**TRAIN, "num_workers": 2, "prefetch": 2}), tmp_path / "stop", progress=False)
    assert threading.active_count() == threads, "an error stops the pipeline's threads (left running, they abort exit)"
    result = train(experiment(train={**TRAIN, "nonfinite": "skip"}), tmp_path / "skip", progress=False)
    assert result["skipped"] == 1 and len(result["losses"]) == 5


def test_batches_are_a_pure_function_of_the_step():
    a, b = EpochOrder(16, 4, seed=0), EpochOrder(16, 4, seed=0)
    for step in (0, 3, 5, 9, 4, 0):
        ea, ia = a(step)
        eb, ib = b(step)
        assert ea == eb and torch.equal(ia, ib)
    epoch0 = torch.cat([a(s)[1] for s in range(4)])
    assert sorted(epoch0.tolist()) == list(range(16)), "an epoch visits every sample once"
    assert not torch.equal(torch.cat([a(s)[1] for s in range(4, 8)]), epoch0), "each epoch has its own order"
    with pytest.raises(ConfigError, match=r"fewer than train.batch_size"):
        EpochOrder(3, 4, seed=0)


def test_the_optimiser_groups_follow_their_schedules(tmp_path):
    """After the run, the decayed group holds the last step's weight decay, the others none; every group
    the last step's learning rate (read back from the checkpoint's optimiser state)."""
    from jepakit.train import load_checkpoint, lr_at, weight_decay_at

    cfg = experiment()
    result = train(cfg, tmp_path, progress=False)
    groups = load_checkpoint(result["checkpoint"])["optimizer"]["param_groups"]
    t = cfg.train
    last = t.steps - 1
    wd = weight_decay_at(last, total_steps=t.steps, start=t.weight_decay, end=t.final_weight_decay)
    lr = lr_at(last, peak=t.lr, total_steps=t.steps, warmup_steps=t.warmup_steps, start=t.start_lr, final=t.final_lr)
    assert [g["weight_decay"] for g in groups] == [wd, 0.0] and wd > t.weight_decay
    assert [g["lr"] for g in groups] == [lr, lr]
    named = result["model"].param_groups()
    assert [len(g["params"]) for g in groups] == [len(g.params) for g in named]


def test_gradient_accumulation_equals_the_whole_batch(tmp_path):
    """Two micro-batches of 2 give the weights one batch of 4 gives (masks that do not depend on the draw:
    the whole grid, so only the accumulation differs)."""
    same = {"masker": "none", "train": {**TRAIN, "steps": 2, "num_workers": 0}}
    whole = train(experiment(**same), tmp_path / "whole", progress=False)
    split = train(
        experiment(**{**same, "train": {**same["train"], "accum_steps": 2}}), tmp_path / "split", progress=False
    )
    assert whole["losses"] == pytest.approx(split["losses"], rel=1e-5)
    a, b = whole["model"].state_dict(), split["model"].state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4, msg=k)
    with pytest.raises(ConfigError, match=r"accum_steps"):
        experiment(train={**TRAIN, "accum_steps": 3})


def test_cli_lists_shows_and_trains(tmp_path, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "tc-jepa-cpu" in out and "masker:" in out
    assert main(["show", "ijepa-cpu", "train.steps=7", "train.warmup_steps=2"]) == 0
    assert "steps = 7" in capsys.readouterr().out
    args = [
        "train",
        "ijepa-cpu",
        "train.steps=2",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "data.size=8",
        "encoder.depth=1",
        "predictor.depth=1",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert main(args) == 0
    assert "checkpoint:" in capsys.readouterr().out


@pytest.mark.parametrize("recipe", ["ijepa", "tc-jepa"])
def test_zero_one_and_two_workers_give_identical_batches(recipe):
    cfg = experiment(recipe, train={**TRAIN, "accum_steps": 2})
    model = cfg.build()
    data = cfg.data.build()
    model.prepare(data)
    runs = []
    for workers in (0, 1, 2):
        runs.append(
            list(
                micro_batches(
                    model.make_batch,
                    data,
                    EpochOrder(len(data), 4, seed=0),
                    seed=0,
                    accum_steps=2,
                    start=0,
                    stop=6,
                    num_workers=workers,
                    prefetch=workers,
                )
            )
        )
    for other in runs[1:]:
        assert len(other) == len(runs[0]) == 12
        for (sa, ja, a), (sb, jb, b) in zip(runs[0], other, strict=True):
            assert (sa, ja) == (sb, jb)
            assert torch.equal(a["images"], b["images"]) and torch.equal(a["masks"].context, b["masks"].context)
            if recipe == "tc-jepa":
                assert torch.equal(a["text"].ids, b["text"].ids)


def test_compiled_forward_trains_like_eager(tmp_path):
    eager = train(experiment(train={**TRAIN, "steps": 2}), tmp_path / "eager", progress=False)["losses"]
    compiled = train(
        experiment(train={**TRAIN, "steps": 2, "compile": True, "compile_backend": "eager"}),
        tmp_path / "compiled",
        progress=False,
    )["losses"]
    assert compiled == pytest.approx(eager, rel=1e-5)


@pytest.mark.parametrize("precision, tolerance", [("bf16", 3e-2), ("fp16", 3e-3)])
def test_autocast_precisions_train_like_fp32(tmp_path, precision, tolerance):
    exact = train(experiment(train={**TRAIN, "steps": 2}), tmp_path / "fp32", progress=False)["losses"]
    result = train(
        experiment(train={**TRAIN, "steps": 2, "precision": precision}), tmp_path / precision, progress=False
    )
    assert all(math.isfinite(x) for x in result["losses"])
    assert result["losses"] == pytest.approx(exact, rel=tolerance)
    assert result["losses"] != exact, f"{precision} autocast must change the arithmetic"


def test_a_collapse_is_warned_in_the_log_once_per_fall_with_the_remedies(tmp_path, monkeypatch):
    """Centred ranks 8 (the first reading, before any step), then 7, 5 (below 0.75 x 8), 5.5, 7.5, 4: a warning
    at the first fall (step 2) and at the second (step 5), not while it stays down; an event line of
    log.jsonl and a line of the run's output, naming the remedies (the method's own among them)."""
    from jepakit.eval import monitors

    ranks = iter([8.0, 7.0, 5.0, 5.5, 7.5, 4.0])
    monkeypatch.setattr(monitors, "centred_rank", lambda z: next(ranks))
    lines: list[str] = []
    cfg = experiment(train={**TRAIN, "steps": 5, "batch_size": 8, "monitor_every": 1})
    train(cfg, tmp_path, progress=False, log=lines.append)
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    warned = [e for e in events if "collapse" in e.get("event", "")]
    assert [e["step"] for e in warned] == [2, 5], warned
    assert "centred rank is 5.00, below 0.75 x its first reading 8.00" in warned[0]["event"]
    assert "train.steps=1" in warned[0]["event"] and "target_updater.momentum_start=0.999" in warned[0]["event"]
    assert "encoder.init=xavier predictor.init=xavier" in warned[0]["event"]
    assert sum("warning: collapse" in line for line in lines) == 2
    records = [e for e in events if "centred_rank" in e]
    assert [r["centred_rank"] for r in records] == [7.0, 5.0, 5.5, 7.5, 4.0]

    ranks = iter([8.0, 1.0, 1.0])  # the first reading, then one per step
    few = experiment(train={**TRAIN, "steps": 2, "batch_size": 4, "monitor_every": 1})
    train(few, tmp_path / "few", progress=False)
    assert "collapse" not in (tmp_path / "few" / "log.jsonl").read_text(), "4 images cannot tell a collapse"


def test_a_run_built_to_collapse_is_warned_and_its_probe_names_cause_and_remedies(tmp_path, capsys):
    """A teacher that is the student (copy), raw targets (no layer norm) and a learning rate of 0.03: the
    trivial solution is in reach and the pooled embeddings fall onto about 1.5 directions within 5 steps. The
    trainer warns, and ``jepakit probe`` says how the scores stand against the floor, that the cause is a
    collapse (the test features' centred rank against random init's), cites the warning and lists the
    remedies, in its output and in probe.json."""
    from jepakit.cli import main

    fast = {"lr": 3e-2, "start_lr": 3e-2, "warmup_steps": 0, "steps": 10, "batch_size": 8, "monitor_every": 5}
    cfg = experiment(target_updater={"type": "copy"}, loss={"normalize_targets": False}, train={**TRAIN, **fast})
    train(cfg, tmp_path / "run", progress=False)
    assert "warning: collapse at step 5" in (tmp_path / "run" / "log.jsonl").read_text()
    capsys.readouterr()
    split = ["--train", "24", "--val", "8", "--test", "16", "--floor-seeds", "2", "--probes", "linear,knn", "--quiet"]
    main(["probe", str(tmp_path / "run"), *split])
    said = capsys.readouterr().out
    assert "linear and kNN scores beat the random-init floor" in said
    assert "cause: a collapse; the test features' centred rank is" in said
    assert "warned of a collapse at step 5" in said and "train.steps=3" in said and "train.lr=0.0075" in said
    diagnosis = json.loads((tmp_path / "run" / "probe.json").read_text())["diagnosis"]
    assert diagnosis[0].startswith("diagnosis:") and diagnosis[-1].startswith("try: ")


def test_epochs_set_the_run_length_from_the_data(tmp_path):
    """train.epochs counts passes over whatever data the run gets: 20 samples at batch 4 for 1.5 epochs
    are 8 steps, warm-up 0.5 epochs 3 steps (rounded up)."""
    from jepakit.train.trainer import run_length

    by_epochs = {**TRAIN, "steps": None, "warmup_steps": None, "epochs": 1.5, "warmup_epochs": 0.5}
    cfg = experiment(data={"size": 20}, train=by_epochs)
    assert run_length(cfg.train, 20) == (8, 3)
    lines: list[str] = []
    result = train(cfg, tmp_path, progress=False, log=lines.append)
    assert len(result["losses"]) == 8 and result["steps"] == 8
    assert "train.epochs=1.5 of 20 samples at batch 4: 8 steps (warm-up 3)" in lines
    mixed = {**TRAIN, "steps": 20, "warmup_steps": None, "warmup_epochs": 6.0}
    with pytest.raises(ConfigError, match=r"a warm-up of 30 steps .* is longer than the run's 20"):
        train(experiment(data={"size": 20}, train=mixed), tmp_path / "mixed", progress=False)
    by_steps = experiment(data={"size": 20}, train={**TRAIN, "steps": 8, "warmup_steps": 3})
    same = train(by_steps, tmp_path / "steps", progress=False)
    assert same["losses"] == result["losses"], "the same schedule as the step counts it resolves to"


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"epochs": 10}, "train.steps=6 and train.epochs=10.0: give exactly one"),
        ({"steps": None}, "train.steps=None and train.epochs=None: give exactly one"),
        ({"warmup_epochs": 1}, "train.warmup_steps=100 and train.warmup_epochs=1.0: give exactly one"),
        ({"steps": None, "epochs": 2, "warmup_steps": None, "warmup_epochs": 3}, "warmup_epochs=3.0 must lie in"),
    ],
)
def test_steps_and_epochs_are_exclusive(fields, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        experiment(train={**TRAIN, "warmup_steps": 100, **fields})


def test_paper_size_recipes_carry_the_papers_schedule_in_epochs():
    from jepakit import get_config

    for recipe, epochs in (("ijepa", 600), ("tc-jepa-large", 600), ("ijepa-huge", 300), ("tc-jepa-huge", 300)):
        t = get_config(recipe).train
        assert (t.epochs, t.warmup_epochs, t.steps, t.batch_size, t.precision) == (epochs, 40, None, 2048, "bf16")
        assert (t.start_lr, t.lr, t.final_lr, t.weight_decay, t.final_weight_decay) == (2e-4, 1e-3, 1e-6, 0.04, 0.4)
    assert get_config("ijepa-cpu").train.steps == 300 and get_config("tc-jepa-cpu").train.epochs is None


def test_online_probes_log_linear_and_knn_accuracies_of_the_evaluated_encoder(tmp_path):
    """Every online_probe_every steps (and the last), probe/<probe>/<task> for each of the data's labels
    and LiDAR, equal to probing the saved run's evaluated encoder on the same slice; off by default."""
    from jepakit.eval import online_probe
    from jepakit.runs import load_method

    probe = {"online_probe_every": 4, "online_probe_images": [16, 8, 16]}
    cfg = experiment(data={"size": 48}, train={**TRAIN, **probe})
    train(cfg, tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    probed = [r for r in records if "probe/linear/count" in r]
    assert [r["step"] for r in probed] == [4, 6]
    keys = {f"probe/{p}/{t}" for p in ("linear", "knn") for t in ("count", "relation", "shapes")}
    assert keys <= set(probed[-1]) and all(0 <= probed[-1][k] <= 1 for k in keys)
    assert probed[-1]["probe/lidar"] >= 1, "LiDAR beside the probes (an entropy rank: at least 1)"
    keys.add("probe/lidar")
    again = online_probe(load_method(tmp_path).eval_encoder(), cfg.data.build(), (16, 8, 16), cfg.train.seed)
    assert all(again[k] == pytest.approx(probed[-1][k]) for k in keys)
    off = tmp_path / "off"
    train(experiment(), off, progress=False)
    assert not any(
        k.startswith("probe/") for line in (off / "log.jsonl").read_text().splitlines() for k in json.loads(line)
    )


def test_online_probes_refuse_too_little_data_and_fsdp():
    with pytest.raises(ConfigError, match=r"online_probe_every=2 with train.fsdp=true"):
        experiment(train={**TRAIN, "online_probe_every": 2, "fsdp": True})
    cfg = experiment(train={**TRAIN, "online_probe_every": 2, "online_probe_images": [16, 8, 16]})
    with pytest.raises(ConfigError, match=r"online_probe_images=\[16, 8, 16\] need 40 images; data 'scenes' has 16"):
        train(cfg, "/tmp/never-written", progress=False)


def test_the_gradient_norm_and_the_mask_sizes_are_logged_on_every_record(tmp_path):
    """What users debug a collapsing run with (the official I-JEPA logs both): the gradient norm before
    clipping and the context and target tokens per image, in log.jsonl, TensorBoard's records and curves.png."""
    from jepakit.viz import curves_figure

    clipped = {**TRAIN, "steps": 2, "log_every": 1, "clip_grad": 1e-6}
    records = []
    for name, train_cfg in (("free", {**TRAIN, "steps": 2, "log_every": 1}), ("clipped", clipped)):
        train(experiment(train=train_cfg), tmp_path / name, progress=False)
        records.append([json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()])
    first = records[0][0]
    assert first["grad_norm"] > 0 and first["grad_norm"] == records[1][0]["grad_norm"], "the norm before clipping"
    assert 4 <= first["context_tokens"] <= 64, "min_keep to the 8 x 8 grid"
    assert first["target_tokens"] > 0 and first["target_tokens"] % 4 == 0, "4 target blocks of one shape per batch"
    axes = [ax.get_ylabel() for ax in curves_figure(records[0]).axes if ax.axison]
    assert {"grad_norm", "context_tokens", "target_tokens"} <= set(axes)
