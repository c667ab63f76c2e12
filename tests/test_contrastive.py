"""Contrastive image-text pretraining: CLIP's and SigLIP's losses against their formulas, the global
batch under torchrun, the method's batches and configs, and a short run of each CPU recipe."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, get_config
from jepakit.losses.contrastive import ClipLossConfig, SigLipLossConfig
from jepakit.methods.base import Draw
from jepakit.train import load_checkpoint, train

from conftest import CAPTIONS, ddp_mean


def tiny(recipe: str = "clip-cpu", **overrides):
    """``recipe`` at 32 px with tiny towers and a few steps."""
    fields: dict = {
        "image_size": 32,
        "embed_dim": 16,
        "encoder": {"embed_dim": 32, "depth": 1, "num_heads": 2, "patch_size": 8},
        "train": {"steps": 4, "warmup_steps": 1, "batch_size": 8, "log_every": 2, "monitor_every": 2},
        "data": {"size": 64},
    }
    if get_config(recipe).text_encoder.name == "transformer":
        fields["text_encoder"] = {"embed_dim": 16, "depth": 1, "num_heads": 2}
        fields["tokenizer"] = {"vocab_size": 300, "max_length": 8}
    for key, value in overrides.items():
        mergeable = isinstance(value, dict) and "type" not in value
        fields[key] = {**fields.get(key, {}), **value} if mergeable else value
    return get_config(recipe, **fields)


def features(b: int, e: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, e, generator=g), dim=-1), F.normalize(torch.randn(b, e, generator=g), dim=-1)


@settings(max_examples=25, deadline=None)
@given(b=st.integers(2, 12), e=st.integers(2, 16), temperature=st.floats(0.01, 1.0), seed=st.integers(0, 10**6))
def test_clip_loss_is_symmetric_infonce_at_the_learnt_temperature(b, e, temperature, seed):
    image, text = features(b, e, seed)
    loss = ClipLossConfig(init_temperature=temperature).build()
    logits = image @ text.T / temperature
    labels = torch.arange(b)
    textbook = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(loss(image, text), textbook, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(2, 12), e=st.integers(2, 16), t=st.floats(0.5, 20), bias=st.floats(-12, 2), seed=st.integers(0, 10**6)
)
def test_siglip_loss_is_the_pairwise_sigmoid_over_the_batch(b, e, t, bias, seed):
    image, text = features(b, e, seed)
    loss = SigLipLossConfig(init_logit_scale=t, init_bias=bias).build()
    z = 2 * torch.eye(b) - 1  # +1 on the matching pairs, -1 elsewhere
    textbook = -F.logsigmoid(z * (t * image @ text.T + bias)).sum() / b
    torch.testing.assert_close(loss(image, text), textbook, rtol=1e-5, atol=1e-5)


def test_the_papers_initialisation_and_clip_clips_its_logit_scale_at_100():
    clip, siglip = ClipLossConfig().build(), SigLipLossConfig().build()
    assert math.isclose(float(clip.scale().detach()), 1 / 0.07, rel_tol=1e-6)
    assert (
        math.isclose(float(siglip.logit_scale.detach().exp()), 10.0, rel_tol=1e-6)
        and float(siglip.logit_bias.detach()) == -10.0
    )
    with torch.no_grad():
        clip.logit_scale.fill_(math.log(1000.0))
    image, text = features(4, 8, 0)
    assert math.isclose(float(clip.scale().detach()), 100.0, rel_tol=1e-6)
    clip(image, text).backward()
    assert float(clip.logit_scale.grad) == 0.0, "past the clip the scale does not learn"


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_one_pair_is_an_error_not_a_zero_loss(name):
    loss = (ClipLossConfig() if name == "clip" else SigLipLossConfig()).build()
    image, text = features(1, 8, 0)
    with pytest.raises(ValueError, match=r"at least 2 image-text pairs per global batch \(got 1\)"):
        loss(image, text)


# ----------------------------------------------------------------------------- the global batch


def _global_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw image and text inputs [8, 6] and a projection [6, 4] both towers share."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g), torch.randn(6, 4, generator=g)


def _loss_and_grads(name: str, rows: slice) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x, y, w = _global_batch()
    w = w.clone().requires_grad_(True)
    loss_fn = (ClipLossConfig() if name == "clip" else SigLipLossConfig()).build()
    loss = loss_fn(F.normalize(x[rows] @ w, dim=-1), F.normalize(y[rows] @ w, dim=-1))
    loss.backward()
    return loss.detach(), [w.grad, *(p.grad for p in loss_fn.parameters())]


def _share(name: str, rank: int, world: int) -> list[torch.Tensor]:
    share = 8 // world
    loss, grads = _loss_and_grads(name, slice(rank * share, (rank + 1) * share))
    return [loss, *grads]


@pytest.mark.distributed
@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_two_processes_see_the_global_batch_as_one_process_does(tmp_path, name):
    ranks = ddp_mean(functools.partial(_share, name), tmp_path)
    loss, grads = _loss_and_grads(name, slice(None))
    for got, want in zip(ranks, [loss, *grads], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    local, _ = _loss_and_grads(name, slice(0, 4))
    assert not torch.allclose(local, loss), "each rank's own half alone is another loss: the ranks did exchange"


# ----------------------------------------------------------------------------- the method


def test_a_batch_pairs_each_image_with_one_of_its_captions_and_counts_the_empty_ones():
    model = tiny().method.build()
    model.tokenizer.fit(CAPTIONS)
    image = torch.rand(3, 32, 32)
    samples = [
        {"image": image, "captions": ["a red square", "there is one object"]},
        {"image": image, "captions": ["", "   "]},  # no usable caption: the image is skipped
        {"image": image, "captions": ["", "a blue circle"]},
    ]
    draw = Draw(0, 0, 0, 0, torch.arange(3), torch.arange(3), 3)
    batch = model.make_batch(samples, draw)
    assert batch["images"].shape == (2, 3, 32, 32) and batch["text"].ids.shape[:2] == (2, 1)
    assert batch["counts"] == {"metric/empty_captions": 3.0, "metric/no_caption": 1.0}
    again = model.make_batch(samples, draw)
    assert torch.equal(again["text"].ids, batch["text"].ids), "the caption drawn is a function of the draw"
    out = model(**batch)
    assert out["loss"].ndim == 0 and float(out["metric/no_caption"]) == 1.0


def test_data_without_captions_is_refused_when_the_config_is_made(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(ConfigError, match=r"method 'contrastive' pairs images with captions, and data 'imagefolder'"):
        tiny(data={"type": "imagefolder", "root": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"data.caption_column is ''"):
        tiny(data={"type": "hf", "path": "user/name", "caption_column": ""})


def test_a_batch_of_one_is_refused_when_the_config_is_made():
    with pytest.raises(ConfigError, match=r"train.batch_size=1: method 'contrastive' needs at least 2"):
        get_config("clip-cpu", train={"batch_size": 1})


def test_the_loss_slot_takes_a_loss_of_the_methods_kind():
    with pytest.raises(ConfigError, match=r"loss 'smooth-l1' is not an image-text loss; .*\['clip', 'siglip'\]"):
        get_config("clip-cpu", loss="smooth-l1")
    with pytest.raises(ConfigError, match=r"loss 'clip' is not a regression loss"):
        get_config("ijepa-cpu", loss="clip")


def test_the_frozen_text_control_trains_only_the_text_projection():
    model = get_config("contrastive-frozen-text-cpu").method.build()
    trained = {id(p) for g in model.param_groups() for p in g.params}
    assert not any(id(p) in trained for p in model.text_encoder.parameters())
    assert all(id(p) in trained for p in model.text_proj.parameters())
    assert all(id(p) in trained for p in model.loss_fn.parameters()), "the temperature learns"


@pytest.mark.parametrize("recipe", ["clip-cpu", "siglip-cpu"])
def test_the_cpu_recipes_train_and_their_towers_move(tmp_path, recipe):
    cfg = tiny(recipe)
    result = train(cfg, tmp_path, progress=False)
    model = result["model"]
    torch.manual_seed(cfg.train.seed)
    initial = cfg.method.build().state_dict()
    for prefix in ("encoder.blocks", "text_encoder.blocks", "image_proj", "text_proj", "loss_fn.logit_scale"):
        assert any(not torch.equal(v, initial[k]) for k, v in model.state_dict().items() if k.startswith(prefix)), (
            f"{prefix} did not move"
        )
    assert math.isfinite(result["losses"][-1])
    saved = load_checkpoint(result["checkpoint"])["optimizer"]["param_groups"]
    assert {(tuple(g["betas"]), g["eps"]) for g in saved} == {(cfg.train.betas, cfg.train.eps)}
    assert cfg.train.betas == ((0.9, 0.98) if recipe == "clip-cpu" else (0.9, 0.95)), "the paper's AdamW moments"


# ----------------------------------------------------------------------------- retrieval and zero-shot


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 30), seed=st.integers(0, 10**6))
def test_roc_auc_equals_scikit_learns(n, seed):
    from sklearn.metrics import roc_auc_score

    from jepakit.eval.image_text import roc_auc

    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 5, (n,), generator=g).float()  # ties included
    positive = torch.arange(n) < max(1, n // 3)
    assert roc_auc(scores, positive) == pytest.approx(roc_auc_score(positive.numpy(), scores.numpy()))


def test_recall_counts_a_query_whose_hit_is_in_its_top_k():
    from jepakit.eval.image_text import recall_at

    scores = torch.tensor([[0.9, 0.5, 0.1], [0.9, 0.5, 0.1], [0.1, 0.2, 0.3]])
    hits = torch.tensor([[True, False, False], [False, False, True], [False, True, False]])
    assert recall_at(scores, hits, ks=(1, 2, 3)) == pytest.approx({"R@1": 1 / 3, "R@2": 2 / 3, "R@3": 1.0})


class _Reader:
    """A "model" that embeds an image by its first pixel's colour index and a caption by the colour it names."""

    words = ("red", "green", "blue")

    def encode_image(self, images):
        return F.one_hot(images[:, 0, 0, 0].long(), 3).float()

    def encode_text(self, texts):
        return torch.stack(
            [F.one_hot(torch.tensor(next(i for i, w in enumerate(self.words) if w in t)), 3) for t in texts]
        ).float()


def test_retrieval_is_perfect_for_a_model_that_reads_the_colour_and_counts_identical_captions_as_one():
    from jepakit.eval.image_text import retrieval

    images = torch.zeros(4, 3, 2, 2)
    images[:, 0, 0, 0] = torch.tensor([0.0, 1.0, 2.0, 0.0])
    captions = [["a red thing"], ["a green thing", ""], ["a blue thing"], ["a red thing"]]
    out = retrieval(_Reader(), _Reader().encode_image(images), captions)
    assert out["distinct_captions"] == 3 and out["images"] == 4
    assert out["image_to_text"] == {"R@1": 1.0, "R@5": 1.0}
    assert out["text_to_image"] == {"R@1": 1.0, "R@5": 1.0}, "either red image is a hit for 'a red thing'"
    wrong = [["a green thing"], ["a blue thing"], ["a red thing"], ["a green thing"]]
    assert retrieval(_Reader(), _Reader().encode_image(images), wrong)["image_to_text"]["R@1"] == 0.0


def test_probe_on_a_contrastive_run_adds_retrieval_and_zero_shot(tmp_path):
    import json

    from jepakit.cli import main

    train(tiny(), tmp_path / "run", progress=False)
    args = ["probe", str(tmp_path / "run"), "--train", "24", "--val", "8", "--test", "16", "--probes", "linear"]
    assert main([*args, "--floor-seeds", "0", "--quiet"]) == 0
    written = json.loads((tmp_path / "run" / "probe.json").read_text())
    assert set(written["linear"]) == {"count", "relation", "shapes"}, "the image tower is probed as any encoder"
    retrieval, zero = written["image_text"]["retrieval"], written["image_text"]["zero_shot"]
    assert retrieval["images"] == 16 and set(retrieval["image_to_text"]) == {"R@1", "R@5"}
    assert 0 <= zero["count"] <= 1 and 0 <= zero["shapes_auc"] <= 1


def test_a_caption_embeds_the_same_whatever_its_padding_holds():
    from jepakit.text import TokenBatch

    model = tiny().method.build().eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 300, (4, 1, 8), generator=g)
    mask = torch.zeros(4, 1, 8, dtype=torch.bool)
    mask[..., :3] = True
    other = torch.where(mask, ids, torch.randint(3, 300, ids.shape, generator=g))  # other ids under the padding
    with torch.no_grad():
        a, b = model.encode_text(TokenBatch(ids, mask)), model.encode_text(TokenBatch(other, mask))
    torch.testing.assert_close(a, b)
    assert torch.allclose(a.norm(dim=-1), torch.ones(4)), "embeddings are L2-normalised"
