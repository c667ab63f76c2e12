"""Export: the target encoder loads strictly into timm and gives the same features."""

from __future__ import annotations

import json

import pytest
import torch

from jepakit import load_encoder
from jepakit.cli import main
from jepakit.train import load_checkpoint, train

from conftest import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(
        "ijepa", masker={"min_keep": 4}, data={"size": 8}, train={"steps": 2, "batch_size": 4, "warmup_steps": 1}
    )
    result = train(cfg, out, progress=False)
    return result["checkpoint"], result["model"]


def test_exported_encoder_loads_strictly_into_timm(trained, tmp_path):
    import timm

    checkpoint, model = trained
    assert main(["export", str(checkpoint), "--format", "timm", "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["source"]["weights"] == "target_encoder"
    net = timm.create_model(
        meta["timm_model"], pretrained=False, checkpoint_path=str(tmp_path / "model.safetensors"), **meta["timm_kwargs"]
    ).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.target_encoder(x).mean(1)
        torch.testing.assert_close(net(x), expected)
        torch.testing.assert_close(load_encoder(tmp_path)(x).mean(1), expected)


def test_export_takes_the_target_weights_not_the_online_ones(trained, tmp_path):
    from jepakit.export import export_timm

    checkpoint, _ = trained
    state = load_checkpoint(checkpoint)["model"]
    encoder = load_encoder(export_timm(checkpoint, tmp_path))
    for k, v in encoder.state_dict().items():  # the patch embedding has the normalisation folded in
        assert torch.equal(v, state[f"target_encoder.{k}"]) or k.startswith("patch_embed.")


def test_load_encoder_needs_an_export(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config.json"):
        load_encoder(tmp_path)


def test_an_export_of_another_checkpoint_is_refused_and_kept(trained, tmp_path, capsys):
    """Exporting again into the same folder from the same checkpoint (named by its file or its run folder) is
    allowed (the same files); from another checkpoint file, or onto a file, it is refused in one line and what
    was there stays."""
    import shutil

    checkpoint, _ = trained
    earlier = tmp_path / "copied.pt"
    shutil.copy(checkpoint, earlier)
    assert main(["export", str(checkpoint.parent.parent), "--out", str(tmp_path / "x")]) == 0
    weights = (tmp_path / "x" / "model.safetensors").read_bytes()
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "x")]) == 0
    capsys.readouterr()
    assert main(["export", str(earlier), "--out", str(tmp_path / "x")]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "holds the export of" in said[0] and str(checkpoint) in said[0]
    assert (tmp_path / "x" / "model.safetensors").read_bytes() == weights
    (tmp_path / "file").write_text("mine")
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "file")]) == 2
    assert (tmp_path / "file").read_text() == "mine"
