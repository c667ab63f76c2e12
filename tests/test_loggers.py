"""Loggers: every record reaches JSONL, TensorBoard and W&B (read back from their files), a
resumed run's logs read as if it never stopped, and curves.png plots every logged point."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from jepakit import ConfigError, get_config
from jepakit.config import UnknownChoiceError
from jepakit.train import train
from jepakit.train.loggers import read_jsonl
from jepakit.viz import curves_figure

from conftest import tiny_config

TRAIN = {"steps": 8, "batch_size": 4, "warmup_steps": 2, "log_every": 2, "monitor_every": 3, "checkpoint_every": 4}
#: Values that differ between two runs of the same config (wall-clock speed).
TIMED = {"images_per_s"}


def experiment(*loggers: str, **train_overrides):
    return tiny_config(
        "ijepa", masker={"min_keep": 4}, data={"size": 16}, train={**TRAIN, "loggers": loggers, **train_overrides}
    )


def metrics(out: Path) -> list[dict]:
    """The run's metric records from log.jsonl (events left out)."""
    return [r for r in read_jsonl(out / "log.jsonl") if "event" not in r]


def tensorboard_scalars(out: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] as TensorBoard reads the run's event files (purged steps dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def as_series(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for k, v in r.items():
            if k != "step":
                series.setdefault(k, []).append((r["step"], v))
    return series


def same_series(a: dict[str, list[tuple[int, float]]], b: dict[str, list[tuple[int, float]]]) -> None:
    """Equal tags, steps, and values to TensorBoard's float32."""
    assert a.keys() == b.keys()
    for tag in a:
        assert [s for s, _ in a[tag]] == [s for s, _ in b[tag]], tag
        assert [v for _, v in a[tag]] == pytest.approx([v for _, v in b[tag]], rel=1e-6, abs=1e-12), tag


def test_every_record_reaches_tensorboard_as_logged(tmp_path):
    train(experiment("jsonl", "tensorboard"), tmp_path, progress=False)
    records = metrics(tmp_path)
    assert [r["step"] for r in records] == [2, 3, 4, 6, 8], "log steps and monitor steps"
    assert {"loss", "lr", "weight_decay", "ema_momentum", "images_per_s", "effective_rank", "embedding_std"} <= {
        k for r in records for k in r
    }
    same_series(tensorboard_scalars(tmp_path), as_series(records))


def test_a_resumed_run_logs_as_if_it_never_stopped(tmp_path):
    """A run killed after step 6 with its last checkpoint at 4: the resume drops steps 5-6 from
    every log and logs them again, once."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(experiment("jsonl", "tensorboard"), straight, progress=False)
    train(experiment("jsonl", "tensorboard"), killed, progress=False, until=6)
    (killed / "checkpoints" / "step-00000006.pt").unlink()  # the kill came before its checkpoint
    train(experiment("jsonl", "tensorboard"), killed, resume=True, progress=False)
    drop = lambda rs: [{k: v for k, v in r.items() if k not in TIMED} for r in rs]  # noqa: E731
    assert drop(metrics(killed)) == drop(metrics(straight))
    same_series(tensorboard_scalars(killed), as_series(metrics(killed)))


def wandb_history(run_dir: Path) -> list[dict]:
    """The history rows of an offline W&B run, read from its transaction log (``run-ID.wandb``:
    a 7-byte ``:W&B`` header, then LevelDB-log records in 32 KiB blocks holding protobuf ``Record``s)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("run-*.wandb")
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    rows, chunk, pos = [], b"", 7
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # block trailer / padding
            pos += left
            continue
        chunk, pos = chunk + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()  # type: ignore[attr-defined]  # generated protobuf code
            record.ParseFromString(chunk)
            chunk = b""
            if record.WhichOneof("record_type") == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                rows.append({k: v for k, v in row.items() if k in ("_step",) or not k.startswith("_")})
    return rows


def test_wandb_offline_gets_every_record_and_resumes_the_same_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    out = tmp_path / "run"
    train(experiment("jsonl", "wandb"), out, progress=False, until=4)
    train(experiment("jsonl", "wandb"), out, resume=True, progress=False)
    runs = sorted((out / "wandb").glob("offline-run-*"))
    run_id = (out / "wandb-id").read_text()
    # W&B names a run's folder by the second it started and the run id, with "-1" when the resumed run started
    # within the same second as the first: the id is what says the two are one run
    named = re.compile(rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(run_id)}(-\d+)?")
    assert len(runs) == 2 and all(named.fullmatch(r.name) for r in runs), "one W&B run id across the resume"
    logged = [row for r in runs for row in wandb_history(r)]
    expected = [{"_step": r.pop("step"), **r} for r in metrics(out)]
    assert logged == expected


def test_curves_plot_every_logged_point_on_labelled_axes():
    records = [
        {"step": 2, "loss": 0.9, "lr": 1e-3},
        {"step": 3, "effective_rank": 5.0},
        {"step": 4, "loss": 0.5, "lr": 5e-4},
        {"step": 6, "loss": 0.4, "lr": 1e-4, "effective_rank": 4.0},
    ]
    axes = [ax for ax in curves_figure(records).axes if ax.get_visible() and ax.axison]
    assert [ax.get_ylabel() for ax in axes] == ["loss", "lr", "effective_rank"]
    assert all(ax.get_xlabel() == "step" for ax in axes)
    for ax in axes:
        expected = [(r["step"], r[ax.get_ylabel()]) for r in records if ax.get_ylabel() in r]
        assert [tuple(p) for p in ax.lines[0].get_xydata()] == expected
        assert ax.lines[0].get_marker() not in (None, "", "None"), "each point marked"


def test_a_run_draws_its_curves(tmp_path):
    from PIL import Image

    train(experiment("jsonl"), tmp_path, progress=False)
    assert Image.open(tmp_path / "curves.png").size[0] > 600


def names(cfg) -> list[str]:
    return [c.name for c in cfg.train.loggers]


def test_loggers_are_chosen_by_name_and_checked_when_the_config_is_made(monkeypatch):
    assert names(get_config("ijepa-cpu", "train.loggers=[jsonl, tensorboard]")) == ["jsonl", "tensorboard"]
    assert get_config("ijepa-cpu", "train.loggers=[]").train.loggers == ()
    with pytest.raises(
        UnknownChoiceError, match=r"unknown logger 'tensorbord'.*jsonl, tensorboard, wandb.*'tensorboard'"
    ):
        get_config("ijepa-cpu", "train.loggers=[jsonl,tensorbord]")
    with pytest.raises(ConfigError, match="names a logger twice"):
        get_config("ijepa-cpu", "train.loggers=[jsonl,jsonl]")


def test_wandb_not_installed_is_a_config_error(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'jepakit\[wandb\]'"):
        train(experiment("wandb"), tmp_path, progress=False)
    assert not (tmp_path / "checkpoints").exists(), "refused before training"


def test_a_chosen_loggers_fields_are_set_by_its_name_and_reach_the_logger(tmp_path, monkeypatch):
    """``wandb.project=...``, ``tensorboard.flush_secs=...``: fields of a logger ``train.loggers`` chooses; a
    field of one it does not choose, or one it lacks, is refused when the config is made."""
    import importlib.util
    import sys
    import types

    cfg = get_config("ijepa-cpu", "train.loggers=[jsonl,wandb]", "wandb.project=mine", "wandb.entity=lab")
    assert [(c.name, getattr(c, "project", None)) for c in cfg.train.loggers] == [("jsonl", None), ("wandb", "mine")]
    assert get_config("ijepa-cpu", "tensorboard.flush_secs=7").train.loggers[1].flush_secs == 7
    with pytest.raises(ConfigError, match=r"wandb.project is set, but train.loggers=\['jsonl', 'tensorboard'\]"):
        get_config("ijepa-cpu", "wandb.project=mine")
    with pytest.raises(UnknownChoiceError, match=r"unknown field 'projct'.*'project'"):
        get_config("ijepa-cpu", "train.loggers=[wandb]", "wandb.projct=mine")
    with pytest.raises(ConfigError, match=r"flush_secs=0 must be >= 1"):
        get_config("ijepa-cpu", "tensorboard.flush_secs=0")
    seen: dict = {}

    class Run:
        def log(self, *a, **k) -> None: ...
        def finish(self) -> None: ...

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: seen.update(kwargs) or Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else real(name, *a))
    chosen = ({"type": "logger/wandb", "project": "mine", "entity": "lab"}, {"type": "tensorboard", "flush_secs": 7})
    result = train(experiment(*chosen), tmp_path, progress=False)
    assert (seen["project"], seen["entity"], seen["name"]) == ("mine", "lab", tmp_path.name)
    assert result["steps"] == TRAIN["steps"] and any((tmp_path / "tensorboard").iterdir())


def test_a_run_saved_with_logger_names_resumes_with_logger_configs(tmp_path):
    """Runs written before loggers had fields stored their names; they read back as the same loggers."""
    from jepakit.config import from_dict, to_dict

    saved = to_dict(get_config("ijepa-cpu"))
    saved["train"]["loggers"] = ["jsonl", "tensorboard"]
    assert from_dict(saved) == get_config("ijepa-cpu")
