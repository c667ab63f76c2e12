"""Mask pictures: what is drawn where, and the PNG written."""

from __future__ import annotations

import torch
from PIL import Image

from jepakit import Masks
from jepakit.cli import main
from jepakit.viz import TARGET_COLOURS, mask_overlay, save_png


def test_overlay_dims_non_context_and_colours_targets():
    images = torch.full((1, 3, 16, 16), 0.5)
    context = torch.tensor([[0, 1, 4, 5]])  # top-left 2x2 patches of a 4x4 grid (patch 4)
    targets = torch.tensor([[[10, 11, 14, 15]]])  # bottom-right 2x2
    out = mask_overlay(images, Masks(context, targets, (4, 4)), patch=4)
    assert torch.allclose(out[0, :, 2, 2], torch.full((3,), 0.5)), "context keeps its pixels"
    assert torch.allclose(out[0, :, 2, 13], torch.full((3,), 0.5 * 0.35)), "outside the context is dimmed"
    assert torch.allclose(out[0, :, 8, 8], TARGET_COLOURS[0]), "a target block is outlined in its colour"
    inner = out[0, :, 12, 12]
    assert inner[0] > inner[1] and inner[0] > inner[2], "and tinted inside"


def test_png_and_cli(tmp_path):
    path = save_png(torch.rand(5, 3, 8, 8), tmp_path / "grid.png", columns=3)
    assert Image.open(path).size == (3 * 10 + 2, 2 * 10 + 2)
    out = tmp_path / "masks.png"
    assert main(["viz", "masks", "ijepa-cpu", "data.size=4", "--images", "4", "--out", str(out)]) == 0
    assert Image.open(out).size == (4 * 66 + 2, 66 + 2)
