"""``jepakit push`` and ``hf://`` sources, offline: the upload through huggingface_hub's own code up to the
commit it would send, and a hub cache laid out as a download leaves it, probed back by hub id."""

from __future__ import annotations

import json

import huggingface_hub
import pytest
import torch

from jepakit.cli import main
from jepakit.config import MissingFileError
from jepakit.hub import hub_repo, local_path

from conftest import tiny_config


@pytest.fixture
def sent(monkeypatch):
    """What HfApi would send: the repository it creates and the files of each commit (no request leaves)."""
    record: dict[str, object] = {"repos": [], "commits": []}

    def create_repo(self, repo_id, **kwargs):
        record["repos"].append((repo_id, kwargs.get("private")))
        return f"https://huggingface.co/{repo_id}"

    def create_commit(self, repo_id, operations, commit_message="", **kwargs):
        files = {op.path_in_repo: op.path_or_fileobj for op in operations}
        record["commits"].append((repo_id, commit_message, {k: open(v, "rb").read() for k, v in files.items()}))
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/0123abc",
            commit_message=commit_message,
            commit_description="",
            oid="0123abc",
        )

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", create_commit)
    return record


def cache_as_downloaded(root, repo_id: str, files: dict[str, bytes], revision: str = "0123abc"):
    """The hub cache after a download of ``repo_id`` at ``revision``: refs/main and a snapshot folder."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "snapshots" / revision).mkdir(parents=True)
    for name, data in files.items():
        (repo / "snapshots" / revision / name).write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


def test_a_pushed_run_probes_back_by_its_hub_id_with_the_same_numbers(tmp_path, monkeypatch, sent):
    from jepakit.train import train

    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(
        "ijepa", masker={"min_keep": 4}, data={"size": 16}, train={"steps": 2, "batch_size": 4, "warmup_steps": 1}
    )
    train(cfg, tmp_path / "run", progress=False)
    probe = ["--train", "24", "--val", "8", "--test", "16", "--probes", "linear,knn", "--quiet"]
    assert main(["probe", str(tmp_path / "run"), *probe, "--floor-seeds", "1"]) == 0
    assert main(["push", str(tmp_path / "run"), "me/tiny-ijepa", "--private"]) == 0
    assert sent["repos"] == [("me/tiny-ijepa", True)]
    ((repo, message, files),) = sent["commits"]
    assert message == "jepakit push run"
    assert repo == "me/tiny-ijepa" and {"model.safetensors", "config.json", "README.md", "probe.json"} <= set(files)
    card = files["README.md"].decode()
    assert "library_name: jepakit" in card and "| linear | count |" in card and "±" in card
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cache_as_downloaded(tmp_path / "hub", "me/tiny-ijepa", files)
    exported = tmp_path / "exported"
    exported.mkdir()
    for name, data in files.items():
        (exported / name).write_bytes(data)
    assert main(["probe", str(exported), *probe, "--floor-seeds", "0", "--out", str(tmp_path / "local")]) == 0
    assert main(["probe", "hf://me/tiny-ijepa", *probe, "--floor-seeds", "0"]) == 0
    here, there = (
        json.loads((d / "probe.json").read_text()) for d in (tmp_path / "local", tmp_path / "runs" / "hf-me-tiny-ijepa")
    )
    assert here["linear"] == there["linear"] and here["knn"] == there["knn"]
    assert torch.equal(*(torch.tensor(list(r["knn"].values())) for r in (here, there)))
    from jepakit import create

    teacher = create("target_updater", "frozen", checkpoint="hf://me/tiny-ijepa")  # a frozen teacher by hub id
    assert teacher.make_target(None) is not None and "hf://me/tiny-ijepa" in teacher.source


def test_hub_sources_name_what_is_wrong_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_repo("hf://me/model@v1.0") == ("me/model", "v1.0") and hub_repo("runs/x") is None
    with pytest.raises(MissingFileError, match="hf://USER/NAME"):
        hub_repo("hf://just-a-name")
    with pytest.raises(MissingFileError, match="not in the Hugging Face cache"):
        local_path("hf://me/never-downloaded")
    with pytest.raises(MissingFileError, match="not in the Hugging Face cache"):
        tiny_config("ijepa", train={"init_from": "hf://me/never-downloaded"})
