"""Tokenizer, text encoders and conditioners: the TC-JEPA properties."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, create, get_config
from jepakit.conditioners.xattn import sparse_regularisers
from jepakit.text import TextFeatures, TokenBatch
from jepakit.text.spm_tokenizer import SentencePieceTokenizer

from conftest import tiny_config

CAPTIONS = [
    "a red circle",
    "there are three objects",
    "a small blue square left of a green triangle",
    "two yellow triangles above a purple circle",
    "an orange square on a striped background",
] * 4
TEXT_CONDITIONERS = ["sparse-xattn", "global-xattn", "adaln", "feature"]


@pytest.fixture(scope="module")
def tokenizer():
    return create("tokenizer", "sentencepiece", vocab_size=400, max_length=10, max_captions=4).fit(CAPTIONS)


# ------------------------------------------------------------------ tokenizer


def test_training_is_reproducible_and_bytes_round_trip(tokenizer):
    again = create("tokenizer", "sentencepiece", vocab_size=400, max_length=10, max_captions=4).fit(CAPTIONS)
    assert again.to_bytes() == tokenizer.to_bytes()
    loaded = SentencePieceTokenizer.from_bytes(tokenizer.to_bytes(), tokenizer.config)
    caps = [CAPTIONS[:3], CAPTIONS[3:4]]
    assert torch.equal(loaded(caps).ids, tokenizer(caps).ids)


def test_vocabulary_adapts_to_a_small_corpus(tokenizer):
    assert 256 < tokenizer.vocab_size < 400


def test_unknown_characters_fall_back_to_bytes(tokenizer):
    ids = tokenizer.encode(["ein grüner Kreis ☃"])[0]
    assert tokenizer.config.unk_id not in ids


def test_padding_truncation_and_missing_captions(tokenizer):
    long = "a small blue square left of a green triangle above two red circles"
    batch = tokenizer([[long, "a red circle"], [], ["x"] * 7])
    assert batch.ids.shape == (3, 4, 10)
    lengths = [len(t) for t in tokenizer.encode([long, "a red circle", "x"])]
    assert lengths[0] > 10 and batch.truncated == sum(n > 10 for n in lengths[:2])
    assert batch.mask[0, 0].all() and not batch.mask[0, 2:].any(), "missing captions are masked, not invented"
    assert not batch.mask[1].any()
    assert batch.mask[2].any(-1).sum() == 4, "N caps the captions per image"
    assert (batch.ids[~batch.mask] == 0).all()


def test_an_existing_model_file_loads(tmp_path, tokenizer):
    path = tmp_path / "spiece.model"
    path.write_bytes(tokenizer.to_bytes())
    loaded = create("tokenizer", "sentencepiece", model_file=str(path), max_length=10, max_captions=4)
    assert torch.equal(loaded([CAPTIONS[:2]]).ids, tokenizer([CAPTIONS[:2]]).ids)


def test_bad_tokenizer_files_and_settings(tmp_path):
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"this is not a sentencepiece model")
    with pytest.raises(ConfigError, match=r"junk.model.*not a SentencePiece model"):
        create("tokenizer", "sentencepiece", model_file=str(junk))
    with pytest.raises(FileNotFoundError, match=r"nope.model"):
        create("tokenizer", "sentencepiece", model_file=str(tmp_path / "nope.model"))
    with pytest.raises(RuntimeError, match=r"fit"):
        create("tokenizer", "sentencepiece")([["a"]])
    for field in ("max_captions", "max_length"):
        with pytest.raises(ConfigError, match=field):
            create("tokenizer", "sentencepiece", **{field: 0})


# ------------------------------------------------------------------ text encoder


def encoder(trainable: bool = True):
    torch.manual_seed(0)
    return create(
        "text_encoder",
        "transformer",
        embed_dim=16,
        depth=2,
        num_heads=2,
        vocab_size=64,
        max_length=12,
        trainable=trainable,
    )


@given(real=st.integers(1, 6), pad=st.integers(0, 6), seed=st.integers(0, 2**31))
def test_pad_tokens_never_change_the_word_embeddings(real, pad, seed):
    enc = encoder()
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 64, (1, 1, real), generator=g)
    padded = torch.cat([ids, torch.randint(0, 64, (1, 1, pad), generator=g)], -1)
    mask = torch.arange(real + pad) < real
    with torch.no_grad():
        a = enc(TokenBatch(ids, torch.ones(1, 1, real, dtype=torch.bool))).tokens
        b = enc(TokenBatch(padded, mask.expand(1, 1, -1))).tokens[..., :real, :]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_frozen_text_encoder_gets_no_gradient_and_is_not_optimised():
    cfg = tiny_config("tc-jepa", masker={"min_keep": 4}, text_encoder={"trainable": False})
    model = cfg.build()
    ids = torch.randint(0, 300, (2, 3, 8))
    out = model(torch.randn(2, 3, 32, 32), model.masker(2), TokenBatch(ids, torch.ones(2, 3, 8, dtype=torch.bool)))
    out["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in model.text_encoder.parameters())
    assert "text_encoder" not in model.trainable_modules()
    model.train()
    assert not model.text_encoder.training


@given(st.integers(0, 10_000))
def test_a_frozen_encoders_memo_gives_its_output_and_encodes_each_caption_once(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tiny = dict(vocab_size=64, max_length=8, embed_dim=16, depth=1, num_heads=2, trainable=False)
    frozen = create("text_encoder", "transformer", **tiny, memo=6)
    plain = create("text_encoder", "transformer", **tiny, memo=0)
    plain.load_state_dict(frozen.state_dict())
    pool = torch.randint(0, 64, (5, 8), generator=g)  # 5 distinct captions, drawn with repeats
    lengths = torch.randint(0, 9, (5,), generator=g)  # 0: an absent caption
    for _ in range(3):
        pick = torch.randint(0, 5, (2, 3), generator=g)
        mask = torch.arange(8) < lengths[pick][..., None]
        tokens = TokenBatch(pool[pick], mask)
        torch.testing.assert_close(frozen(tokens).tokens, plain(tokens).tokens, atol=1e-6, rtol=1e-6)
    memo = frozen.memo
    assert memo.misses == len(memo) <= 5 and memo.hits + memo.misses == 18
    assert (
        plain.memo is None and create("text_encoder", "transformer", vocab_size=64, max_length=8, memo=8).memo is None
    )


def test_the_memo_drops_the_least_recently_used_caption():
    from jepakit.text.memo import CaptionMemo

    memo, calls = CaptionMemo(2), []

    def encode(ids, keys):
        calls.append(ids[:, 0].tolist())
        return ids[..., None].float()

    keys = torch.ones(1, 2, dtype=torch.bool)
    for first in (1, 2, 1, 3, 2):
        memo(torch.tensor([[first, 0]]), keys, encode)
    assert calls == [[1], [2], [3], [2]] and len(memo) == 2  # 2 was dropped when 3 came (1 was newer)
    with pytest.raises(ValueError, match=r"capacity=0"):
        CaptionMemo(0)


def test_token_ids_outside_the_table():
    with pytest.raises(ValueError, match=r"vocab_size=64"):
        encoder()(TokenBatch(torch.tensor([[[70]]]), torch.ones(1, 1, 1, dtype=torch.bool)))


# ------------------------------------------------------------------ conditioners


def setup(name: str, seed: int = 0, **fields):
    """A tiny predictor, a conditioner, multiblock masks and context tokens."""
    torch.manual_seed(seed)
    pred = create("predictor", "vit-predictor", encoder_dim=24, embed_dim=16, depth=3, num_heads=2).eval()
    size = {"dim": 16, "text_dim": 12, **({} if name == "feature" else {"depth": 3})}
    cond = create("conditioner", name, **size, **fields).eval()
    m = create("masker", "multiblock", input_size=32, patch_size=4, min_keep=4)(2, torch.Generator().manual_seed(seed))
    z = torch.randn(*m.context.shape, 24, generator=torch.Generator().manual_seed(seed))

    def run(text):
        return pred(z, m.context, m.targets, m.grid, m.context_valid, m.targets_valid, hook=cond.bind(text))

    return cond, run


def features(seed: int = 0, n: int = 3, s: int = 5) -> TextFeatures:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(2, n, s, dtype=torch.bool)
    mask[:, :, s - 1] = False
    return TextFeatures(torch.randn(2, n, s, 12, generator=g), mask)


@pytest.mark.parametrize("name", TEXT_CONDITIONERS)
def test_without_any_caption_the_predictor_is_ijepas(name):
    _, run = setup(name)
    text = features()
    absent = TextFeatures(text.tokens, torch.zeros_like(text.mask))
    with torch.no_grad():
        torch.testing.assert_close(run(absent), run(None))


@pytest.mark.parametrize("name", TEXT_CONDITIONERS)
@given(seed=st.integers(0, 2**31))
def test_max_pooling_ignores_caption_order_and_duplicates(name, seed):
    _, run = setup(name)
    text = features(seed)
    perm = torch.tensor([2, 0, 1])
    shuffled = TextFeatures(text.tokens[:, perm], text.mask[:, perm])
    dup = TextFeatures(torch.cat([text.tokens, text.tokens[:, :1]], 1), torch.cat([text.mask, text.mask[:, :1]], 1))
    with torch.no_grad():
        base = run(text)
        torch.testing.assert_close(run(shuffled), base, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(run(dup), base, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TEXT_CONDITIONERS)
@given(pad=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_pad_words_never_change_the_output(name, pad, seed):
    _, run = setup(name)
    text = features(seed)
    junk = torch.randn(2, 3, pad, 12, generator=torch.Generator().manual_seed(seed + 1)) * 100
    longer = TextFeatures(
        torch.cat([text.tokens, junk], 2), torch.cat([text.mask, torch.zeros(2, 3, pad, dtype=torch.bool)], 2)
    )
    poisoned = TextFeatures(text.tokens.masked_fill(~text.mask[..., None], 1e4), text.mask)
    with torch.no_grad():
        base = run(text)
        torch.testing.assert_close(run(longer), base, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(run(poisoned), base, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TEXT_CONDITIONERS)
def test_changing_a_caption_changes_the_prediction(name):
    cond, run = setup(name)
    if name == "adaln":  # zero-initialised: starts as I-JEPA by design; move it off zero
        with torch.no_grad():
            for p in cond.parameters():
                p.normal_(0, 0.1)
    text = features(0)
    other = TextFeatures(text.tokens.clone(), text.mask)
    other.tokens[0, 0] = torch.randn(5, 12) * 3
    with torch.no_grad():
        a, b = run(text), run(other)
    assert not torch.allclose(a[0], b[0], atol=1e-4)
    torch.testing.assert_close(a[1], b[1]), "image 1's prediction does not read image 0's captions"


def test_adaln_starts_as_ijepa():
    _, run = setup("adaln")
    with torch.no_grad():
        torch.testing.assert_close(run(features()), run(None))


def drive(cond, text, seed: int = 0):
    """Run a tiny predictor with ``cond``'s hook on ``text``; return the output and the hook."""
    torch.manual_seed(seed)
    p = create("predictor", "vit-predictor", encoder_dim=24, embed_dim=16, depth=3, num_heads=2)
    m = create("masker", "multiblock", input_size=32, patch_size=4, min_keep=4)(2, torch.Generator().manual_seed(seed))
    hook = cond.bind(text)
    out = p(torch.randn(*m.context.shape, 24), m.context, m.targets, m.grid, m.context_valid, hook=hook)
    return out, hook


@given(pad=st.integers(1, 6), seed=st.integers(0, 2**31), repeats=st.sampled_from([1, 2]))
def test_context_padding_changes_neither_predictions_nor_regularisers(pad, seed, repeats):
    """A context padded to a longer one in its batch: the same predictions, L_sparse, L_consistency and
    fraction of positive O (padding tokens are no predictor tokens: 'mean over tokens' skips them)."""
    torch.manual_seed(seed)
    pred = create("predictor", "vit-predictor", encoder_dim=24, embed_dim=16, depth=2, num_heads=2)
    cond = create("conditioner", "sparse-xattn", dim=16, text_dim=12, depth=2)
    g = torch.Generator().manual_seed(seed)
    rows = 2 * repeats
    perm = torch.stack([torch.randperm(36, generator=g) for _ in range(rows)])
    context, targets = perm[:, :5].sort(1).values, perm[:, 5:11].view(rows, 2, 3)
    z = torch.randn(rows, 5, 24, generator=g)
    padded_z = torch.cat([z, 100 * torch.randn(rows, pad, 24, generator=g)], 1)
    padded_context = torch.cat([context, torch.zeros(rows, pad, dtype=torch.long)], 1)
    valid = (torch.arange(5 + pad) < 5).expand(rows, -1)
    text = features(seed)

    def run(zz, cc, vv=None):
        hook = cond.bind(text, step=10**6)
        out = pred(zz, cc, targets, (6, 6), vv, repeats=repeats, hook=hook)
        return [out, *cond.losses(hook).values(), *cond.metrics(hook).values()]

    with torch.no_grad():
        for a, b in zip(run(padded_z, padded_context, valid), run(z, context), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TEXT_CONDITIONERS)
@given(seed=st.integers(0, 2**31))
def test_conditioned_blocks_on_packed_tokens_equal_the_padded_computation(name, seed):
    """The hook runs the predictor's blocks on the valid tokens (its packing): the padded path's
    predictions, loss parts and gradients."""
    torch.manual_seed(seed)
    pred = create("predictor", "vit-predictor", encoder_dim=24, embed_dim=16, depth=2, num_heads=2)
    size = {"dim": 16, "text_dim": 12, **({} if name == "feature" else {"depth": 2})}
    cond = create("conditioner", name, **size)
    if name == "adaln":  # zero-initialised modulation would hide the conditioned path
        for p in cond.parameters():
            torch.nn.init.normal_(p, std=0.1)
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(36, generator=g) for _ in range(2)])
    context, targets = perm[:, :7].sort(1).values, perm[:, 7:13].view(2, 2, 3)
    valid = torch.rand(2, 7, generator=g) < 0.6
    valid[:, 0] = True
    z = torch.randn(2, 7, 24, generator=g)
    text = features(seed)
    params = list(pred.parameters()) + list(cond.parameters())

    def run(pack: bool):
        pred.pack_tokens = pack
        for p in params:
            p.grad = None
        hook = cond.bind(text, step=10**6)
        out = pred(z, context, targets, (6, 6), valid, hook=hook)
        assert (hook.packing is not None) == pack
        parts = list(cond.losses(hook).values())
        (out.square().mean() + sum(parts, torch.zeros(()))).backward()
        return [out.detach(), *[p.detach() for p in parts]] + [p.grad for p in params if p.grad is not None]

    for a, b in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@given(seed=st.integers(0, 2**31))
def test_o_lies_in_unit_interval_and_gradients_reach_wq_wk_wv(seed):
    cond, _ = setup("sparse-xattn", seed)
    out, hook = drive(cond.train(), features(seed), seed)
    o = torch.stack(hook.store["o"])
    assert o.min() >= 0 and o.max() <= 1 + 1e-6
    losses = cond.losses(hook)
    (out.square().mean() + losses["sparse"] + losses["consistency"]).backward()
    for layer in cond.layers.values():
        for w in (layer.q.weight, layer.k.weight, layer.v.weight):
            assert w.grad is not None and w.grad.abs().sum() > 0


def naive_sparse_layer(layer, x, text, words, captions, centred=False):
    """TC-JEPA's layer read plainly: one caption at a time, F.cosine_similarity (against the keys, or
    the keys minus their mean over the caption's real words), torch.max pooling."""
    u, length, d = x.shape
    h = layer.heads
    dh = d // h
    q, k, v = layer.q(x), layer.k(text), layer.v(text)
    reads, cos = [], []
    for c in range(text.shape[1]):
        qh = q.view(u, length, h, dh).transpose(1, 2)
        kh, vh = (t[:, c].reshape(u, -1, h, dh).transpose(1, 2) for t in (k, v))
        keys = words[:, c].clone()
        keys[:, 0] |= ~keys.any(-1)
        scores = (qh @ kh.transpose(-1, -2) * dh**-0.5).masked_fill(~keys[:, None, None, :], float("-inf"))
        read = (scores.softmax(-1) @ vh).transpose(1, 2).reshape(u, length, d)
        reads.append(read.masked_fill(~captions[:, c, None, None], float("-inf")))
        kc = k[:, c]
        if centred:
            real = words[:, c, :, None].float()
            kc = kc - (kc * real).sum(1, keepdim=True) / real.sum(1, keepdim=True).clamp_min(1)
        cos.append(torch.nn.functional.cosine_similarity(q[:, :, None], kc[:, None], dim=-1, eps=1e-12))
    pooled = torch.stack(reads, 1).max(1).values
    pooled = torch.where(captions.any(1)[:, None, None], pooled, 0.0)
    y = x + pooled
    return y + layer.mlp(layer.norm(y)), torch.stack(cos, 2).clamp_min(0) * words[:, None]


@given(
    seed=st.integers(0, 2**31),
    heads=st.sampled_from([1, 2]),
    n=st.integers(1, 4),
    drop=st.booleans(),
    cosine=st.sampled_from(["keys", "centred-keys"]),
)
def test_sparse_layer_equals_a_caption_by_caption_reference(seed, heads, n, drop, cosine):
    """The batched layer (one matmul for every caption's keys, pooling in chunks in the heads layout,
    cosines from the attention's own dot products) against the plain loop."""
    from jepakit.conditioners.xattn import SparseXAttnConditioner

    torch.manual_seed(seed)
    cond = create("conditioner", "sparse-xattn", dim=16, text_dim=12, depth=1, num_heads=heads, cosine=cosine)
    assert isinstance(cond, SparseXAttnConditioner)
    layer = cond.layers["0"]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 7, 16, generator=g)
    text = torch.randn(3, n, 5, 12, generator=g)
    words = torch.rand(3, n, 5, generator=g) < 0.7
    words[..., 0] = True
    if drop:
        words[0, -1] = False  # an absent caption
        words[1] = False  # an image without captions
    captions = words.any(-1)

    def run(fn):
        layer.zero_grad()
        xi, ti = x.clone().requires_grad_(True), text.clone().requires_grad_(True)
        out, o = fn(xi, ti)
        (out.square().mean() + o.sum()).backward()
        return [out.detach(), o.detach(), xi.grad, ti.grad] + [
            p.grad.clone() for p in layer.parameters() if p.grad is not None
        ]

    def batched(xi, ti):
        out, q, k, dot = layer(xi, ti, words, captions)

        class Hook:  # what the conditioner stores for the regularisers
            store: ClassVar[dict] = {}
            tokens = None

            def add(self, name, value):
                self.store.setdefault(name, []).append(value)

        hook = Hook()
        cond.regularise(hook, layer, xi, q, k, dot, words)
        return out, hook.store["o"][0]

    centred = cosine == "centred-keys"
    naive = run(lambda xi, ti: naive_sparse_layer(layer, xi, ti, words, captions, centred))
    for a, b in zip(run(batched), naive, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_regularisers_zero_cases():
    o = torch.rand(3, 2, 5, 4, 6)  # [layers, units, tokens, captions, words]
    captions = torch.ones(2, 4, dtype=torch.bool)
    sparse, consistency = sparse_regularisers(o, captions)
    assert sparse > 0 and consistency > 0
    same = o[:1].expand_as(o)
    assert float(sparse_regularisers(same, captions)[1]) < 1e-6, "equal O on every layer: no inconsistency"
    assert float(sparse_regularisers(torch.zeros_like(o), captions)[0]) == 0.0
    expected = o.sum(-1).mean()
    torch.testing.assert_close(sparse, expected)
    absent = captions.clone()
    absent[:, 1:] = False
    torch.testing.assert_close(sparse_regularisers(o, absent)[0], o[:, :, :, :1].sum(-1).mean())


def test_dead_zone_is_reported_by_the_metric():
    """All cosines <= 0 (here: zero keys): L_sparse is exactly 0 and o_positive says so."""
    cond, _ = setup("sparse-xattn")
    _, hook = drive(cond, features())
    assert 0.2 < float(cond.metrics(hook)["metric/o_positive"]) < 0.8
    with torch.no_grad():
        for layer in cond.layers.values():
            layer.k.weight.zero_()
    _, hook = drive(cond, features())
    assert float(cond.losses(hook)["sparse"].detach()) == 0.0
    assert float(cond.metrics(hook)["metric/o_positive"]) == 0.0


@given(seed=st.integers(0, 2**31))
def test_centred_cosines_ignore_what_the_attention_ignores(seed):
    """Adding one vector to every key of a caption changes no attention weight (the softmax does not see
    it), so no prediction; it moves the literal cosines (the free way to drive them all negative) but not
    the centred ones. The shift: the text's last feature is 1 for every word, so a change of W_K's last
    column adds that column to every key."""
    text = features(seed)
    text = TextFeatures(torch.cat([text.tokens[..., :-1], torch.ones_like(text.tokens[..., :1])], -1), text.mask)
    shift = 3 * torch.randn(16, generator=torch.Generator().manual_seed(seed))
    for cosine in ("keys", "centred-keys"):
        cond, _ = setup("sparse-xattn", seed, cosine=cosine)
        with torch.no_grad():
            out, hook = drive(cond, text, seed)
            for layer in cond.layers.values():
                layer.k.weight[:, -1] += shift
            shifted, moved = drive(cond, text, seed)
        torch.testing.assert_close(shifted, out, atol=1e-5, rtol=1e-5)
        o, o_moved = torch.stack(hook.store["o"]), torch.stack(moved.store["o"])
        if cosine == "keys":
            assert (o - o_moved).abs().max() > 0.05
        else:
            torch.testing.assert_close(o_moved, o, atol=1e-4, rtol=1e-3)  # float32 cancellation


@pytest.mark.parametrize("cosine", ["keys", "centred-keys"])
def test_attention_only_regularisers_have_the_same_terms_and_leave_the_features_alone(cosine):
    """reg_grad=attention: the same L_sparse and L_consistency, whose gradient reaches the conditioner's
    W_Q and W_K (equal to what they get with reg_grad=all, up to the paths through later layers) but
    neither the encoder nor the predictor's blocks."""
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    grads = {}
    for mode in ("all", "attention"):
        torch.manual_seed(0)
        model = tiny_config("tc-jepa", masker={"min_keep": 4}, conditioner={"cosine": cosine, "reg_grad": mode})
        model = model.build()
        model.tokenizer.fit(CAPTIONS)
        out = model(x, model.masker(2, torch.Generator().manual_seed(1)), [CAPTIONS[:3], CAPTIONS[3:5]])
        (out["sparse"] + out["consistency"]).backward()
        grads[mode] = (
            out["sparse"].detach(),
            out["consistency"].detach(),
            [p.grad for p in model.encoder.parameters()],
            [p.grad for p in model.predictor.blocks.parameters()],
            model.conditioner.layers["0"].q.weight.grad,
        )
    every, attention = grads["all"], grads["attention"]
    torch.testing.assert_close(attention[:2], every[:2], atol=0, rtol=0)
    assert all(g is None for g in attention[2] + attention[3]), "no regulariser gradient in the features"
    assert any(g is not None and g.abs().sum() > 0 for g in every[2]), "the paper's form trains the encoder too"
    assert attention[4].abs().sum() > 0


def test_regulariser_warmup_ramps_lambda_and_beta():
    cond, _ = setup("sparse-xattn", reg_warmup_steps=10)
    assert cond.ramp(0) == 0.0 and cond.ramp(5) == 0.5 and cond.ramp(50) == 1.0 and cond.ramp(None) == 1.0


def test_single_layer_conditioning_touches_one_layer():
    cond, _ = setup("sparse-xattn", layers=(-1,))
    assert list(cond.layers) == ["2"]


# ------------------------------------------------------------------ the assembled TC-JEPA


def test_tc_jepa_with_none_gives_exactly_ijepas_loss():
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    losses = []
    for recipe, extra in (("ijepa", {}), ("tc-jepa", {"conditioner": "none"})):
        torch.manual_seed(0)
        model = tiny_config(recipe, masker={"min_keep": 4}, **extra).build()
        masks = model.masker(2, torch.Generator().manual_seed(0))
        losses.append(model(x, masks, [["a red circle"], ["two squares"]] if extra else None)["loss"])
    assert torch.equal(losses[0], losses[1])


def test_tc_jepa_trains_from_raw_captions():
    torch.manual_seed(0)
    model = tiny_config("tc-jepa", masker={"min_keep": 4}).build()
    model.tokenizer.fit(CAPTIONS)
    captions = [CAPTIONS[:3], CAPTIONS[3:5]]
    out = model(torch.randn(2, 3, 32, 32), model.masker(2), captions, step=3)
    assert {"loss", "predict", "sparse", "consistency", "metric/o_positive"} <= set(out)
    parts = [v for k, v in out.items() if k != "loss" and not k.startswith("metric/")]
    torch.testing.assert_close(out["loss"], sum(parts))
    out["loss"].backward()
    assert all(p.grad is not None for p in model.conditioner.parameters())


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"conditioner": {"text_dim": 99}}, ["conditioner.text_dim=99", "text_encoder.embed_dim"]),
        (
            {"text_encoder": {"type": "transformer", "vocab_size": 10}, "tokenizer": "sentencepiece"},
            ["text_encoder.vocab_size=10", "tokenizer.vocab_size"],
        ),
        ({"text_encoder": None}, ["conditioner.text_dim", "a text conditioner needs one", "text_encoder=transformer"]),
    ],
)
def test_mismatched_text_sides_fail_when_the_config_is_made(overrides, words):
    with pytest.raises(ConfigError) as e:
        get_config("tc-jepa", **overrides)
    for w in words:
        assert w in str(e.value)


def test_text_features_of_the_wrong_width_are_reported():
    torch.manual_seed(0)
    model = tiny_config("tc-jepa", masker={"min_keep": 4}).build()
    bad = TextFeatures(torch.randn(2, 3, 5, 7), torch.ones(2, 3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"d_t=16"):
        model(torch.randn(2, 3, 32, 32), model.masker(2), bad)


def test_every_tc_recipe_describes_what_it_changes():
    from jepakit import list_recipes
    from jepakit.registry import recipe_entry

    for name in list_recipes("tc-jepa*"):
        assert recipe_entry(name).help


# ------------------------------------------------------------------ cached text


def small_vocab(tok):
    """The tokenizer's batches with ids folded into the tiny test encoder's 64-row table."""
    return lambda caps: (lambda b: TokenBatch(b.ids % 64, b.mask))(tok(caps))


def test_cache_returns_the_encoders_output_by_sample(tmp_path, tokenizer):
    from jepakit.text import TextCache

    enc = encoder(trainable=False)
    captions = [CAPTIONS[i : i + (i % 3) + 1] for i in range(10)]
    cache = TextCache.build(tmp_path / "text", captions, small_vocab(tokenizer), enc, batch_size=4)
    assert len(cache) == 10 and cache.width == 16
    picked = TextCache.open(tmp_path / "text")[torch.tensor([7, 2])]
    with torch.no_grad():
        direct = enc(small_vocab(tokenizer)([captions[7], captions[2]]))
    assert torch.equal(picked.mask, direct.mask)
    torch.testing.assert_close(picked.tokens[picked.mask], direct.tokens[direct.mask], atol=2e-3, rtol=2e-3)


def test_cache_refuses_a_trainable_encoder_and_reports_broken_files(tmp_path, tokenizer):
    from jepakit.text import TextCache

    with pytest.raises(ValueError, match=r"frozen"):
        TextCache.build(tmp_path / "t", [["a"]], tokenizer, encoder(trainable=True))
    with pytest.raises(FileNotFoundError, match=r"no text cache"):
        TextCache.open(tmp_path / "missing")
    enc = encoder(trainable=False)
    ids = small_vocab(tokenizer)
    TextCache.build(tmp_path / "t", [["a red circle"]] * 3, ids, enc)
    data = (tmp_path / "t.tokens.f16").read_bytes()
    (tmp_path / "t.tokens.f16").write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"truncated"):
        TextCache.open(tmp_path / "t")
    with pytest.raises(IndexError, match=r"outside"):
        TextCache.build(tmp_path / "u", [["a"]] * 2, ids, enc)[[5]]


def test_adaln_modulates_the_final_norm_too_unless_asked_not_to():
    """The paper's AdaLN baseline modulates every predictor LayerNorm, the final one included."""
    text = features()
    outs = {}
    for final in (True, False):
        cond, run = setup("adaln", final_norm=final)
        with torch.no_grad():
            before = run(text)
            if cond.final is not None:
                cond.final.bias.normal_(generator=torch.Generator().manual_seed(0))
            outs[final] = (before, run(text))
    assert not torch.allclose(*outs[True]), "a non-zero final modulation changes the predictions"
    torch.testing.assert_close(*outs[False])
    torch.testing.assert_close(outs[True][0], outs[False][0])  # zero-initialised: the same start


def test_global_xattn_over_all_captions_reads_one_caption_as_the_per_caption_form_does():
    """With one caption, attending over the captions' t̄ (a single key, weight 1) reads W_V t̄ as the
    per-caption form does; with several, it weighs them instead of max-pooling their read-outs."""
    outs = {}
    for keys in ("each-caption", "all-captions"):
        cond, run = setup("global-xattn", keys=keys)
        if keys == "all-captions":  # the shared parts take the per-caption model's weights
            shared = {k: v for k, v in outs["each-caption"][0].state_dict().items()}
            missing = cond.load_state_dict(shared, strict=False).missing_keys
            assert missing and all(k.endswith((".q.weight", ".k.weight")) for k in missing)
            assert cond.config.param_count()[0] == sum(p.numel() for p in cond.parameters())
        with torch.no_grad():
            outs[keys] = (cond, run(features(n=1)), run(features(n=3)))
    torch.testing.assert_close(outs["all-captions"][1], outs["each-caption"][1])
    assert not torch.allclose(outs["all-captions"][2], outs["each-caption"][2])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), cut=st.integers(1, 7))
def test_a_causal_text_tower_reads_no_later_token_and_a_bidirectional_one_does(seed, cut):
    torch.manual_seed(seed)
    fields = dict(embed_dim=16, depth=2, num_heads=2, vocab_size=50, max_length=8)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 50, (2, 1, 8), generator=g)
    later = ids.clone()
    later[..., cut:] = torch.randint(3, 50, later[..., cut:].shape, generator=g)
    mask = torch.ones_like(ids, dtype=torch.bool)
    for causal in (True, False):
        torch.manual_seed(seed)
        tower = create("text_encoder", "transformer", causal=causal, **fields).eval()
        a, b = (tower(TokenBatch(x, mask)).tokens[..., :cut, :] for x in (ids, later))
        if causal:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        elif not torch.equal(ids[..., cut:], later[..., cut:]):
            assert not torch.allclose(a, b), "both ways: the earlier tokens read the later ones"


def test_the_last_real_token_is_pooled_and_an_absent_caption_is_zero():
    tokens = torch.randn(2, 2, 5, 3)
    mask = torch.tensor([[[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], [[1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]], dtype=torch.bool)
    last = TextFeatures(tokens, mask).last()
    assert torch.equal(last[0, 0], tokens[0, 0, 2]) and torch.equal(last[1, 0], tokens[1, 0, 4])
    assert torch.equal(last[1, 1], tokens[1, 1, 0]) and torch.equal(last[0, 1], torch.zeros(3))
    clip = get_config("clip")
    assert clip.text_encoder.causal and clip.method.text_pool == "last", "CLIP's causal tower, pooled at its end"
