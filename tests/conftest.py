"""Shared test settings: seeded hypothesis, tiny model configs."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, settings

from jepakit.check import tiny_config  # noqa: F401  (recipes shrunk for the tests, as the generated tests shrink them)

# Derandomised so CI sees the same examples every run; no deadline (machines are noisy).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One thread: the tests' models are tiny, so each op's cost is its overhead, and a second thread adds
# synchronisation that costs more than it saves (tests/test_eval.py: 62 s on one thread, 166 s on two, measured
# beside two benchmark runs; training tests take the same time on either).
# The golden test runs at the thread count its values were recorded with.
torch.set_num_threads(1)
# The benchmarks' shared settings (e.g. lightly's I-JEPA collator arguments) are importable as ``_common``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
# No test reaches the network: Hugging Face libraries read local files only, W&B runs offline.
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", WANDB_SILENT="true")


def batch(model: Any, b: int = 4, seed: int = 0) -> tuple[torch.Tensor, Any]:
    """Seeded random images [b, 3, H, W] at the method's size and its masker's masks for them."""
    size = model.config.image_size
    x = torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return x, model.masker(b, torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True, scope="session")
def _jepakit_cache(tmp_path_factory):
    """Caches jepakit keeps between commands (random-init floors) go to a temporary folder, not home."""
    os.environ["JEPAKIT_CACHE"] = str(tmp_path_factory.mktemp("jepakit-cache"))


@pytest.fixture
def recorded_threads():
    """Run at the thread count the golden values were recorded with (the bits of a reduction, and LAPACK's
    SVD in the monitors, depend on it)."""
    from golden import THREADS

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    """The encoded bytes of a one-colour image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


#: Captions the tiny text models are fitted on.
CAPTIONS = ["a red circle", "two blue squares", "a green triangle left of a yellow star", "three objects"] * 5


def tiny_t5(path: Path):
    """Save a T5 encoder with random weights, a SentencePiece vocabulary trained on ``CAPTIONS`` and its
    Hugging Face tokenizer under ``path``; returns the jepakit tokenizer of the same vocabulary."""
    import transformers

    from jepakit import create

    tok = create("tokenizer", "sentencepiece", vocab_size=300, max_length=8, max_captions=2).fit(CAPTIONS)
    cfg = transformers.T5Config(vocab_size=tok.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    cfg.decoder_start_token_id = 0
    torch.manual_seed(0)
    transformers.T5EncoderModel(cfg).save_pretrained(path)
    (path / "spiece.model").write_bytes(tok.to_bytes())
    transformers.T5Tokenizer(vocab_file=str(path / "spiece.model"), extra_ids=0).save_pretrained(path)
    return tok


def _mean_over_ranks(rank: int, world: int, init_file: str, compute: Any, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = compute(rank, world)
        for t in results:  # what DDP does with the gradients: their mean over ranks
            dist.all_reduce(t)
            t /= world
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


def _on_one_thread(rank: int, fn: Any, args: tuple) -> None:
    """``fn(rank, *args)`` at one thread, set before any op: a forked process must not use the parent's
    thread pool, and one thread per rank is what the suite runs at."""
    torch.set_num_threads(1)
    fn(rank, *args)


def on_ranks(fn: Any, args: tuple, world: int = 2, timeout: float = 300) -> None:
    """Run ``fn(rank, *args)`` on ``world`` processes forked from this one, one thread each (a spawned process
    would import torch and jepakit again, seconds each); fails after ``timeout`` seconds rather than hang."""
    import time

    import torch.multiprocessing as mp

    ranks = mp.start_processes(_on_one_thread, args=(fn, args), nprocs=world, join=False, start_method="fork")
    deadline = time.monotonic() + timeout
    while not ranks.join(timeout=1):
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            raise AssertionError(f"{world} ranks of {fn.__name__} still running after {timeout} s")


def ddp_mean(compute: Any, tmp_path: Path, world: int = 2) -> list[torch.Tensor]:
    """Run ``compute(rank, world) -> [tensors]`` on ``world`` gloo processes and return its tensors averaged
    over the ranks, as DDP averages gradients."""
    out = tmp_path / "ranks.pt"
    on_ranks(_mean_over_ranks, (world, str(tmp_path / "init"), compute, str(out)), world)
    return torch.load(out, weights_only=True)


def embedding_terms_and_grads(cfg: Any, rows: slice) -> list[torch.Tensor]:
    """An embedding loss's terms, and the gradient of their sum, on ``rows`` of 8 fixed inputs [8, 6] through
    a projection [6, 5] (scaled so that a std hinge is active)."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(8, 6, generator=g), torch.randn(6, 5, generator=g).requires_grad_(True)
    terms = cfg.build()(0.3 * x[rows] @ w, step=7)
    torch.stack(list(terms.values())).sum().backward()
    return [*(t.detach() for t in terms.values()), w.grad]


def embedding_share(cfg: Any, rank: int, world: int) -> list[torch.Tensor]:
    """``embedding_terms_and_grads`` on this rank's share of the 8 inputs (for ``ddp_mean``)."""
    share = 8 // world
    return embedding_terms_and_grads(cfg, slice(rank * share, (rank + 1) * share))


def check_global_batch(cfg: Any, tmp_path: Path) -> None:
    """2 gloo processes holding half the batch each give one process's terms and gradients of the whole."""
    import functools

    ranks = ddp_mean(functools.partial(embedding_share, cfg), tmp_path)
    for got, want in zip(ranks, embedding_terms_and_grads(cfg, slice(None)), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(embedding_terms_and_grads(cfg, slice(0, 4))[0], ranks[0]), "half the batch differs"
