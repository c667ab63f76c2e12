"""The benchmarks compare like with like: the peer's step computes the loss jepakit's step does."""

from __future__ import annotations

import pytest
import torch

bench_train = pytest.importorskip("bench_train")


@pytest.mark.parametrize("seed", [0, 1])
def test_the_train_step_benchmark_times_equal_losses_on_equal_weights_and_masks(seed):
    """lightly's assembly in bench_train holds the weights jepakit's step starts from and gets the same
    images and masks, so both steps compute the same I-JEPA loss (float32 rounding apart); its encoder
    keeps the final norm (timm's fc_norm=False), whose absence moved the loss by about 4e-4."""
    args = (2, 128, 2, seed)  # an 8 x 8 grid: the collator finds contexts of min_keep=10
    theirs = bench_train.make_step("lightly", *args)
    ours = bench_train.make_step("jepakit-same-masks", *args)
    assert theirs.loss is not None and ours.loss is not None
    with torch.no_grad():
        torch.testing.assert_close(theirs.loss(), ours.loss(), rtol=1e-5, atol=1e-6)
