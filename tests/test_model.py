"""The assembled JEPA: losses, gradients, the target encoder's isolation, bad input, learning."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, Masks, build

from conftest import batch, tiny_config


@pytest.fixture
def model():
    torch.manual_seed(0)
    return tiny_config("ijepa", masker={"min_keep": 4}).build()


def test_forward_returns_the_loss_and_its_parts(model):
    out = model(*batch(model))
    assert set(out) == {"loss", "predict"}
    torch.testing.assert_close(out["loss"], out["predict"])


def test_targets_are_the_target_encoders_tokens_at_the_target_patches(model):
    with torch.no_grad():  # a teacher that differs from the student, as after any EMA step
        for p in model.target_encoder.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    x, m = batch(model)
    with torch.no_grad():
        whole = model.target_encoder(x)  # [B, N, D]
        expected = torch.stack([whole[i, m.targets[i]] for i in range(len(x))])  # [B, M, Kt, D], by hand
        assert not torch.allclose(model.encoder(x), whole)
    torch.testing.assert_close(model.forward_target(x, m), expected)


@pytest.mark.parametrize("recipe", ["ijepa", "tc-jepa"])
def test_each_image_is_predicted_from_itself_alone(recipe):
    """Other images of the batch (other pixels, other captions) change no prediction of image 0: the encoders,
    the packing of padded contexts, the predictor and the conditioner keep images apart."""
    torch.manual_seed(0)
    model = tiny_config(recipe, masker={"min_keep": 4}).build().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g)
    masks = model.masker(4, g)
    assert masks.context_valid is not None, "padded contexts: the case where rows could mix"
    captions = [["a red circle", "two squares"], ["a blue star"], ["three objects"], ["a green square"]]
    other_captions = [captions[0], ["a yellow diamond"], ["one object"], ["everything is purple"]]
    if model.tokenizer is not None:
        model.tokenizer.fit([c for cs in captions + other_captions for c in cs] * 5)
    others = x.clone()
    others[1:] = torch.rand(3, 3, 32, 32, generator=g)

    def predictions(images, text):
        grid = model.encoder.grid_of(images)
        z = model.forward_context(images, masks)
        hook = model.conditioner.bind(
            model.encode_text(text, 4, images.device) if model.conditioner.uses_text else None
        )
        return model.predictor(z, masks.context, masks.targets, grid, masks.context_valid, masks.targets_valid, 1, hook)

    with torch.no_grad():
        first = predictions(x, captions)
        torch.testing.assert_close(predictions(others, other_captions)[0], first[0], atol=1e-6, rtol=1e-5)
        assert not torch.equal(predictions(others, other_captions)[1], first[1]), "image 1 itself did change"
        torch.testing.assert_close(model.forward_target(others, masks)[0], model.forward_target(x, masks)[0])


def test_gradients_reach_encoder_and_predictor_never_the_target(model):
    model(*batch(model))["loss"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.predictor.parameters())
    assert all(p.grad is None and not p.requires_grad for p in model.target_encoder.parameters())


def test_packed_tokens_give_the_padded_loss_and_gradients():
    """The default masks pad each context to the batch's longest; packing the valid tokens changes nothing."""
    torch.manual_seed(0)
    model = tiny_config("ijepa", masker={"min_keep": 4}).build()
    images, masks = batch(model, b=6, seed=3)
    assert not masks.context_valid.all()

    def run(pack: bool):
        model.zero_grad()
        model.encoder.pack_tokens = model.predictor.pack_tokens = pack
        out = model(images, masks)["loss"]
        out.backward()
        return [out.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None]

    for a, b in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_param_groups_exclude_the_target_and_decay_only_matrices(model):
    groups = model.param_groups()
    ids = {id(p) for g in groups for p in g.params}
    assert not ids & {id(p) for p in model.target_encoder.parameters()}
    assert ids == {id(p) for m in (model.encoder, model.predictor) for p in m.parameters()}
    decay, no_decay = groups
    assert (decay.name, decay.weight_decay_scale, no_decay.name, no_decay.weight_decay_scale) == (
        "decay",
        1.0,
        "no_decay",
        0.0,
    )
    assert all(p.ndim >= 2 for p in decay.params) and all(p.ndim <= 1 for p in no_decay.params)


@pytest.mark.parametrize(
    "recipe, trained",
    [("ijepa", ("encoder", "predictor")), ("tc-jepa", ("encoder", "predictor", "conditioner", "text_encoder"))],
)
def test_the_optimiser_gets_every_trained_part_and_no_teacher(recipe, trained):
    method = tiny_config(recipe, masker={"min_keep": 4}).build()
    ids = [id(p) for g in method.param_groups() for p in g.params]
    assert len(ids) == len(set(ids)), "a parameter in two groups"
    expected = {id(p) for name in trained for p in getattr(method, name).parameters()}
    assert set(ids) == expected


def test_update_target_moves_the_ema_towards_online(model):
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)

    def gap() -> float:
        pairs = zip(model.encoder.parameters(), model.target_encoder.parameters(), strict=True)
        return sum(float((a - b).abs().sum().detach()) for a, b in pairs)

    before = gap()
    assert model.after_step(step=0, total_steps=10) == {"ema_momentum": 0.996}
    assert gap() == pytest.approx(before * 0.996, rel=1e-3)
    online = [p.detach().clone() for p in model.encoder.parameters()]
    for step in (3, 5, 9, 12):  # later steps: the momentum of that step, linear to 1.0 at the run's end
        m = 0.996 + 0.004 * min(step, 10) / 10
        old = [p.detach().clone() for p in model.target_encoder.parameters()]
        assert model.after_step(step=step, total_steps=10)["ema_momentum"] == pytest.approx(m)
        for t0, t1, o in zip(old, model.target_encoder.parameters(), online, strict=True):
            torch.testing.assert_close(t1, m * t0 + (1 - m) * o)


def test_train_mode_keeps_the_target_in_eval(model):
    model.train()
    assert model.encoder.training and not model.target_encoder.training


def test_copy_updater_uses_the_online_encoder_without_gradient():
    torch.manual_seed(0)
    model = tiny_config("ijepa", masker={"min_keep": 4}, target_updater="copy").build()
    assert model.target_encoder is None
    x, m = batch(model)
    targets = model.forward_target(x, m)
    assert not targets.requires_grad
    torch.testing.assert_close(
        targets, model.encoder(x).gather(1, m.targets.reshape(4, -1, 1).expand(-1, -1, 32)).view_as(targets)
    )


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda x, m: (x[:, :1], m), ["[B, 3, H, W]"]),
        (lambda x, m: (x.to(torch.int64), m), ["floating-point"]),
        (lambda x, m: (x[..., :30], m), ["not divisible"]),
        (lambda x, m: (torch.nn.functional.pad(x, (0, 4, 0, 4)), m), ["(8, 8)", "(9, 9)"]),
        (lambda x, m: (x[:2], m), ["4 rows for 2 images"]),
        (lambda x, m: (x, (m.context, m.targets)), ["Masks"]),
    ],
)
def test_bad_input_is_reported_before_the_forward(model, change, words):
    x, m = change(*batch(model))
    with pytest.raises((ValueError, TypeError)) as e:
        model(x, m)
    for w in words:
        assert w in str(e.value)


def test_out_of_range_mask_indices(model):
    x, m = batch(model)
    bad = Masks(m.context, m.targets + 64, m.grid, m.context_valid)
    with pytest.raises(ValueError, match=r"outside the grid"):
        model(x, bad)


def test_a_tiny_ijepa_learns_on_a_fixed_batch():
    """Against a fixed (random) teacher the targets cannot move, so the loss can only fall by learning to
    predict (not by collapse): it must end well below the best single vector for every target. (That
    the predictor reads where the context and targets are is checked against lightly's I-JEPA in
    test_oracles.py and by test_predictor.py.)"""
    torch.manual_seed(0)
    model = tiny_config("ijepa", masker={"min_keep": 4}, target_updater="frozen").build()
    g = torch.Generator().manual_seed(0)
    # smooth, structured images: a few random colour gradients
    coords = torch.linspace(-1, 1, 32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    w = torch.randn(8, 3, 3, generator=g)
    x = w[..., 0, None, None] * xx + w[..., 1, None, None] * yy + w[..., 2, None, None]
    probe = model.masker(8, torch.Generator().manual_seed(999))
    before = model.forward_target(x, probe)
    opt = torch.optim.AdamW(
        [{"params": g.params, "weight_decay": 0.01 * g.weight_decay_scale} for g in model.param_groups()], lr=2e-3
    )
    losses, constant = [], []
    for step in range(100):
        masks = model.masker(8, torch.Generator().manual_seed(step))
        loss = model(x, masks)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step >= 95:
            with torch.no_grad():
                t = model.loss_fn.prepare_target(model.forward_target(x, masks))
                constant.append(
                    float(torch.nn.functional.smooth_l1_loss(t.mean((0, 1, 2), keepdim=True).expand_as(t), t))
                )
    torch.testing.assert_close(model.forward_target(x, probe), before, rtol=0, atol=0)
    first, last, floor = sum(losses[:5]) / 5, sum(losses[-5:]) / 5, sum(constant) / len(constant)
    print(f"loss {first:.4f} -> {last:.4f}; best constant prediction {floor:.4f}")
    assert last < 0.6 * first, losses
    assert last < 0.75 * floor, "the predictor must do better than one vector for every target"


def test_build_ijepa_prints():
    text = repr(build("ijepa", "encoder.depth=1", "predictor.depth=1"))
    assert "ViTEncoder" in text and "ViTPredictor" in text


def test_a_given_teacher_module_becomes_the_frozen_target():
    torch.manual_seed(0)
    model = tiny_config("ijepa", masker={"min_keep": 4}, target_updater="frozen").build()
    teacher = tiny_config("ijepa").encoder.build()
    model.set_target_encoder(teacher)
    x, m = batch(model)
    model(x, m)["loss"].backward()
    assert model.target_encoder is teacher and not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


@given(available=st.integers(0, 12), n=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_pick_captions_draws_n_distinct_in_order_or_keeps_all(available, n, seed):
    from jepakit.methods.jepa import pick_captions

    captions = [f"caption {i}" for i in range(available)]
    picked = pick_captions(captions, n, torch.Generator().manual_seed(seed))
    if available <= n:
        assert picked == captions
    else:
        assert len(picked) == n and len(set(picked)) == n
        assert picked == sorted(picked, key=captions.index), "kept in the image's own order"


def test_make_batch_samples_the_captions_per_epoch_and_sample():
    """An image with more captions than N is conditioned on a seeded subset: the same for the same
    (seed, epoch, index), another in another epoch, not always the first N."""
    from jepakit.methods.base import Draw

    model = tiny_config("tc-jepa", masker={"min_keep": 4}, tokenizer={"max_captions": 2}).build()
    captions = ["a red circle", "a blue square", "two green stars", "one yellow heart", "three dots", "a big cross"]
    model.tokenizer.fit(captions)
    sample = {"image": torch.rand(3, 32, 32), "captions": captions}

    def chosen(epoch: int, index: int) -> list[list[int]]:
        draw = Draw(0, epoch, 0, 0, torch.tensor([index]), torch.tensor([0]), 1)
        return model.make_batch([sample], draw)["text"].ids[0].tolist()

    first = model.tokenizer([captions[:2]]).ids[0].tolist()
    picks = [chosen(epoch, 3) for epoch in range(6)]
    assert chosen(0, 3) == picks[0], "a pure function of (seed, epoch, index)"
    assert len({str(p) for p in picks}) > 1 and any(p != first for p in picks)


@given(p=st.sampled_from([0.25, 0.5, 0.75]), seed=st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
def test_caption_dropout_hides_every_caption_of_a_seeded_share_of_images(p, seed):
    """With caption_dropout p, about p of the images have no caption (their targets are predicted
    unconditioned); which ones is a pure function of (seed, epoch, index); the rest keep theirs."""
    from jepakit.methods.base import Draw

    model = tiny_config("tc-jepa", masker={"min_keep": 4}, caption_dropout=p).build()
    captions = ["a red circle", "a blue square"]
    model.tokenizer.fit(captions)
    n = 200
    samples = [{"image": torch.rand(3, 32, 32), "captions": captions}] * n
    draw = Draw(seed, 0, 0, 0, torch.arange(n), torch.arange(n), n)
    shown = model.make_batch(samples, draw)["text"].mask.any(-1)  # [B, N]
    hidden = ~shown.any(1)
    assert torch.equal(shown[~hidden], shown[~hidden][:1].expand_as(shown[~hidden])), "the rest keep every caption"
    assert abs(hidden.float().mean().item() - p) < 4 * (p * (1 - p) / n) ** 0.5
    again = model.make_batch(samples, draw)["text"].mask.any(-1)
    assert torch.equal(shown, again)
    other = Draw(seed, 1, 0, 0, torch.arange(n), torch.arange(n), n)
    assert not torch.equal(shown, model.make_batch(samples, other)["text"].mask.any(-1)), "another epoch, another draw"


def test_caption_dropout_must_be_a_probability_below_one():
    with pytest.raises(ConfigError, match="caption_dropout"):
        tiny_config("tc-jepa", caption_dropout=1.0)
