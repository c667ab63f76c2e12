"""Evaluation: probes against textbook oracles, feature extraction and caching, the probe command."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from jepakit import create
from jepakit.cli import main
from jepakit.eval import (
    Features,
    attentive_probe,
    dense_probe,
    evaluate,
    extract,
    knn_probe,
    linear_probe,
    mean_iou,
)
from jepakit.eval.probes import AttentiveHead, _lbfgs, patch_class_fractions
from jepakit.runs import load_eval_encoder, load_method

from conftest import tiny_config


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- metrics and probes vs oracles


@given(st.integers(0, 10_000), st.integers(2, 5))
def test_mean_iou_matches_the_set_formula(seed, classes):
    g = _gen(seed)
    pred = torch.randint(0, classes, (3, 5, 4), generator=g)
    target = torch.randint(0, classes, (3, 5, 4), generator=g)
    miou, iou = mean_iou(pred, target, classes)
    expected = []
    for c in range(classes):
        p, t = (
            set((pred == c).flatten().nonzero().flatten().tolist()),
            set((target == c).flatten().nonzero().flatten().tolist()),
        )
        if p | t:
            expected.append(len(p & t) / len(p | t))
            assert iou[c] == pytest.approx(expected[-1])
        else:
            assert math.isnan(iou[c])
    assert miou == pytest.approx(sum(expected) / len(expected))


def test_mean_iou_is_one_for_a_perfect_prediction_and_skips_absent_classes():
    target = torch.tensor([[0, 1], [1, 3]])
    miou, iou = mean_iou(target, target, 5)
    assert miou == 1.0 and math.isnan(iou[2]) and math.isnan(iou[4])


@given(st.integers(0, 10_000), st.integers(1, 7))
def test_knn_probe_matches_a_brute_force_vote(seed, k):
    g = _gen(seed)
    x_train, y_train = torch.randn(30, 5, generator=g), torch.randint(0, 3, (30,), generator=g)
    x_test, y_test = torch.randn(12, 5, generator=g), torch.randint(0, 3, (12,), generator=g)
    hits = 0
    for q, y in zip(x_test, y_test, strict=True):
        sims = sorted(
            ((float(torch.cosine_similarity(q, r, dim=0)), int(c)) for r, c in zip(x_train, y_train, strict=True)),
            reverse=True,
        )[:k]
        votes = [0.0, 0.0, 0.0]
        for s, c in sims:
            votes[c] += math.exp(s / 0.07)
        hits += max(range(3), key=votes.__getitem__) == int(y)
    assert knn_probe((x_train, y_train), (x_test, y_test), k=k)["accuracy"] == pytest.approx(hits / 12)


def _separable(n: int, classes: int, seed: int, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    y = torch.arange(n) % classes
    centres = 4 * torch.randn(classes, dim, generator=g)
    return centres[y] + 0.3 * torch.randn(n, dim, generator=g), y


def test_linear_probe_solves_separable_data_and_reports_its_choice():
    train, val, test = (_separable(120, 4, s) for s in (0, 0, 0))
    out = linear_probe(train, val, test, l2s=(1e-1, 1e-3))
    assert out["accuracy"] == 1.0 and out["l2"] in (1e-1, 1e-3)


@given(st.integers(0, 10_000), st.sampled_from([1e-1, 1e-3]), st.booleans())
def test_the_l2_regularised_logistic_solve_reaches_the_optimum(seed, l2, multilabel):
    """The L-BFGS solve's objective (loss + l2/2 |W|^2, convex) is the minimum Newton's method finds
    in float64 (where the gradient vanishes), to float32 rounding."""
    g = _gen(seed)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64)
    y = (torch.rand(200, 3, generator=g) > 0.5).double() if multilabel else torch.randint(0, 3, (200,), generator=g)
    loss_of = F.binary_cross_entropy_with_logits if multilabel else F.cross_entropy

    def objective(theta):  # theta: W [3, 6] and b [3], flattened
        w, b = theta[:18].view(3, 6), theta[18:]
        return loss_of(x @ w.T + b, y) + 0.5 * l2 * w.square().sum()

    theta = torch.zeros(21, dtype=torch.float64)
    for _ in range(30):  # Newton steps (quadratic convergence); pinv: the softmax ignores a shift of every bias
        grad = torch.autograd.functional.jacobian(objective, theta)
        if float(grad.abs().max()) < 1e-12:
            break
        theta = theta - torch.linalg.pinv(torch.autograd.functional.hessian(objective, theta)) @ grad
    assert float(torch.autograd.functional.jacobian(objective, theta).abs().max()) < 1e-9
    head = torch.nn.Linear(6, 3)
    _lbfgs(head, x.float(), y.float() if multilabel else y, loss_of, l2, max_iter=100)
    solved = torch.cat([head.weight.detach().flatten(), head.bias.detach()]).double()
    assert float(objective(solved)) - float(objective(theta)) < 1e-6


def test_linear_probe_standardises_with_the_training_split_only():
    """A test split of one class (its mean far from the training mean) stays correctly classified: the
    features are standardised with the training split's statistics, never the test split's."""
    g = _gen(3)
    x = torch.randn(400, 4, generator=g)
    y = (x[:, 0] > 0).long()
    test = x[y == 1][:60] + torch.tensor([1.0, 0, 0, 0])
    out = linear_probe((x[:300], y[:300]), (x[300:], y[300:]), (test, torch.ones(60, dtype=torch.long)))
    assert out["accuracy"] == 1.0


def test_linear_probe_is_near_chance_on_noise():
    g = _gen(1)
    split = lambda n: (torch.randn(n, 8, generator=g), torch.randint(0, 4, (n,), generator=g))  # noqa: E731
    assert linear_probe(split(400), split(200), split(400))["accuracy"] < 0.4


def test_multilabel_accuracy_is_per_label_and_exact_match_is_reported():
    g = _gen(2)
    y = (torch.rand(300, 3, generator=g) > 0.5).float()
    x = torch.cat([y * 4 - 2, torch.randn(300, 5, generator=g) * 0.1], 1)
    out = linear_probe((x, y), (x, y), (x, y), multilabel=True)
    assert out["accuracy"] == 1.0 and out["exact_match"] == 1.0
    assert knn_probe((x, y), (x, y), multilabel=True, k=5)["exact_match"] == 1.0
    from jepakit.eval.probes import _accuracy, _exact_match

    logits = torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])  # row 0 right; row 1 wrong in one of 3
    target = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert _accuracy(logits, target, True) == pytest.approx(5 / 6) and _exact_match(logits, target) == 0.5


@given(st.integers(0, 10_000), st.sampled_from([1, 2, 4]))
def test_attentive_head_equals_multihead_attention_computed_plainly(seed, num_heads):
    """The re-associated attention gives nn.MultiheadAttention's output (its keys and values formed)."""
    g = _gen(seed)
    torch.manual_seed(seed)
    head = AttentiveHead(16, 3, num_heads=num_heads).eval()
    with torch.no_grad():
        head.attn.in_proj_bias.normal_(generator=g)  # PyTorch starts it at zero; test the bias terms too
    tokens = torch.randn(3, 7, 16, generator=g)
    kv = head.norm_kv(tokens)
    q = head.query.expand(3, -1, -1)
    x = q + head.attn(q, kv, kv, need_weights=False)[0]
    plain = head.head((x + head.mlp(head.norm_mlp(x)))[:, 0])
    torch.testing.assert_close(head(tokens), plain, atol=1e-5, rtol=1e-5)


@given(st.integers(0, 10_000))
def test_attentive_head_ignores_the_order_of_tokens(seed):
    g = _gen(seed)
    torch.manual_seed(seed)
    head = AttentiveHead(16, 3, num_heads=4).eval()
    tokens = torch.randn(2, 9, 16, generator=g)
    perm = torch.randperm(9, generator=g)
    torch.testing.assert_close(head(tokens), head(tokens[:, perm]))


def test_attentive_probe_reads_one_informative_token_anywhere():
    """The label is which of 3 rare patterns one of 16 tokens carries (at a random place)."""
    g = _gen(3)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = 0.5 * torch.randn(n, 16, 12, generator=g)
        y = torch.randint(0, 3, (n,), generator=g)
        where = torch.randint(0, 16, (n,), generator=g)
        tokens[torch.arange(n), where] += 3 * torch.eye(12)[y]
        return tokens, y

    out = attentive_probe(split(1200), split(200), split(300), num_heads=4)
    assert out["accuracy"] > 0.9


def test_patch_class_fractions_are_each_patchs_class_shares():
    seg = torch.zeros(1, 4, 4, dtype=torch.long)
    seg[0, :2, :2] = 2
    seg[0, 0, 2] = 1
    frac = patch_class_fractions(seg, (2, 2), 3)
    assert frac.shape == (1, 4, 3)
    torch.testing.assert_close(frac[0, 0], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(frac[0, 1], torch.tensor([0.75, 0.25, 0.0]))
    torch.testing.assert_close(frac.sum(-1), torch.ones(1, 4))


def test_dense_probe_segments_perfectly_from_tokens_that_name_their_class():
    g = _gen(4)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        classes = torch.randint(0, 3, (n, 4, 4), generator=g)  # one class per 4x4-pixel patch
        seg = classes.repeat_interleave(4, 1).repeat_interleave(4, 2)
        tokens = torch.eye(3)[classes.flatten(1)] * 5 + 0.1 * torch.randn(n, 16, 3, generator=g)
        return tokens, seg

    out = dense_probe(split(200), split(50), split(100), grid=(4, 4), num_classes=3)
    # bilinear upsampling blurs patch borders a little; the interiors are exact
    assert out["miou"] > 0.8 and out["prediction"].shape == (100, 16, 16)


def test_probes_name_bad_splits_and_unseen_classes():
    x, y = torch.randn(10, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match=r"10 feature rows but 9 labels"):
        linear_probe((x, y[:9]), (x, y), (x, y))
    with pytest.raises(ValueError, match=r"classes \[2\] occur in val/test but never in train"):
        linear_probe((x, y), (x, y), (x, torch.full((10,), 2)))
    with pytest.raises(ValueError, match=r"k=11"):
        knn_probe((x, y), (x, y), k=11)


# ----------------------------------------------------------------------------- extraction and caching


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return tiny_config("ijepa", encoder={"depth": 3}).encoder.build().eval()


@pytest.fixture(scope="module")
def scenes():
    return tiny_config("ijepa", data={"seed": 5}).data.build()


def test_extract_pools_the_last_blocks_and_keeps_labels(encoder, scenes):
    done: list[int] = []
    feats = extract(encoder, scenes, range(6), batch_size=4, layers=2, on_batch=done.append)
    assert done == [4, 2], "the progress hook hears of every batch"
    images = torch.stack([scenes[i]["image"] for i in range(6)])
    with torch.no_grad():
        last = encoder(images)
    assert feats.pooled.shape == (6, 64) and feats.patches.shape == (6, 64, 32) and feats.grid == (8, 8)
    torch.testing.assert_close(feats.pooled[:, 32:], last.mean(1))
    torch.testing.assert_close(feats.patches.float(), last, atol=2e-3, rtol=2e-3)
    assert feats.labels["count"].tolist() == [scenes[i]["labels"]["count"] for i in range(6)]
    assert feats.labels["shapes"].shape == (6, 4) and feats.segmentation.shape == (6, 32, 32)


def test_the_feature_cache_is_reused_and_invalidated_by_new_weights(encoder, scenes, tmp_path, monkeypatch):
    cache = tmp_path / "f.safetensors"
    first = extract(encoder, scenes, range(4), cache=cache)
    calls = []
    monkeypatch.setattr(type(encoder), "layer_outputs", lambda *a, **k: calls.append(1) or [])
    again = extract(encoder, scenes, range(4), cache=cache)
    assert not calls and torch.equal(again.pooled, first.pooled)
    monkeypatch.undo()
    changed = type(encoder)(encoder.config).eval()
    other = extract(changed, scenes, range(4), cache=cache)
    assert not torch.equal(other.pooled, first.pooled)
    assert Features.load(cache)[0].pooled.shape == (4, 32)


def test_extract_counts_unreadable_samples(encoder, scenes):
    class Holes:
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return None if i in (1, 4) else scenes[i]

    feats = extract(encoder, Holes(), range(6))
    assert feats.skipped == 2 and len(feats) == 4


# ----------------------------------------------------------------------------- evaluate, checkpoints, the command


def test_evaluate_runs_every_probe_on_every_label(encoder, scenes):
    out = evaluate(encoder, scenes, train=40, val=10, test=30, probes=("linear", "knn", "dense"))
    assert set(out["linear"]) == {"count", "relation", "shapes"} == set(out["knn"])
    assert 0 <= out["dense"]["miou"] <= 1 and out["n"] == {"train": 40, "val": 10, "test": 30}
    assert out["monitors"]["effective_rank"] >= 1


def test_evaluate_reads_lidar_on_crops_of_the_test_images(encoder, scenes):
    from jepakit.eval import lidar, view_embeddings

    out = evaluate(encoder, scenes, train=20, val=6, test=12, probes=("linear",), lidar_views=(8, 3), seed=4)
    rows = out["details"]["test_rows"].tolist()
    assert len(rows) == 12 and out["details"]["test_data"] is scenes
    want = lidar(view_embeddings(encoder, scenes, rows[:8], views=3, seed=4))
    assert out["monitors"]["lidar"] == pytest.approx(want)
    assert (
        "lidar"
        not in evaluate(encoder, scenes, train=20, val=6, test=12, probes=("linear",), lidar_views=None)["monitors"]
    )


def test_evaluate_names_what_does_not_fit(encoder, scenes, tmp_path):
    with pytest.raises(ValueError, match=r"unknown probes \['lineer'\]"):
        evaluate(encoder, scenes, probes=("lineer",))
    with pytest.raises(
        ValueError, match=r"train=50000 val=1 test=1 need more images than the data has \(50000 images\)"
    ):
        evaluate(encoder, scenes, train=50_000, val=1, test=1)
    odd = create("dataset", "scenes", image_size=30)
    with pytest.raises(ValueError, match=r"30x30, not divisible by the encoder's patch_size=4"):
        evaluate(encoder, odd, train=4, val=2, test=4)
    with pytest.raises(ValueError, match=r"tasks \['label'\] are not labels of this data; it has \['count'"):
        evaluate(encoder, scenes, train=8, val=4, test=8, tasks=["label"], probes=("knn",))


def test_probes_work_on_an_image_folder(encoder, tmp_path):
    from PIL import Image

    g = _gen(5)
    for c, colour in enumerate(["red", "blue"]):
        (tmp_path / colour).mkdir()
        for i in range(12):
            pixels = torch.rand(32, 32, 3, generator=g) * 0.2
            pixels[..., 0 if c == 0 else 2] += 0.8
            Image.fromarray((pixels * 255).byte().numpy()).save(tmp_path / colour / f"{i}.png")
    from jepakit.data.files import ImageFolder, ImageFolderConfig

    data = ImageFolder(ImageFolderConfig(root=str(tmp_path), image_size=32))
    order = torch.randperm(24, generator=g).tolist()  # mix the classes over the splits

    class Shuffled:
        def __len__(self):
            return 24

        def __getitem__(self, i):
            return data[order[i]]

    out = evaluate(encoder, Shuffled(), train=12, val=4, test=8, probes=("linear", "knn"))
    assert out["linear"]["label"] == 1.0 and out["knn"]["label"] == 1.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from jepakit.train import train

    cfg = tiny_config(
        "ijepa", masker={"min_keep": 4}, data={"size": 8}, train={"steps": 2, "batch_size": 4, "warmup_steps": 1}
    )
    result = train(cfg, tmp_path_factory.mktemp("run"), progress=False)
    return result["checkpoint"], result["model"]


def test_a_checkpoint_loads_its_target_encoder_through_its_stored_config(checkpoint):
    path, model = checkpoint
    for source in (path, path.parent.parent):  # the file, or the run folder
        encoder, cfg = load_eval_encoder(source)
        assert cfg.encoder.embed_dim == 32
        for k, v in encoder.state_dict().items():
            assert torch.equal(v, model.target_encoder.state_dict()[k])


def test_probe_command_writes_results_and_a_segmentation_overlay(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    code = main(
        [
            "probe",
            str(path),
            "data.size=64",
            "--train",
            "24",
            "--val",
            "8",
            "--test",
            "16",
            "--probes",
            "linear,dense",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "probe.json").read_text())
    assert set(result["linear"]) == {"count", "relation", "shapes"} and "miou" in result["dense"]
    out = capsys.readouterr().out
    table = out.split("probe results (16 test images, held out)")[1]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines() if line.count("│") == 7]
    shown = {(r[0], r[1]): r[2:] for r in rows}  # score, floor, margin, chosen
    floor = result["random_floor"]
    assert floor["seeds"] == [0, 1, 2] and "kept in" in out
    for key, name, score in (
        (("linear", "count"), "linear/count", result["linear"]["count"]),
        (("dense", "mIoU"), "dense/miou", result["dense"]["miou"]),
    ):
        mean, std = floor["mean"][name], floor["std"][name]
        assert shown[key][0] == f"{score:.4f}" and shown[key][1] == f"{mean:.4f} ± {std:.4f}"
        verdict = "beats" if score - mean > 2 * std else "noise" if score - mean >= -2 * std else "below"
        assert shown[key][2] == f"{score - mean:+.4f} {verdict}"
    again = ["probe", str(path), "data.size=64", "--train", "24", "--val", "8", "--test", "16"]
    assert main([*again, "--probes", "linear,dense", "--out", str(tmp_path), "--quiet"]) == 0
    assert "random-init floor: read from" in capsys.readouterr().out, "the floor is computed once"
    from PIL import Image

    assert Image.open(tmp_path / "segmentation.png").size[0] > 3 * 32


def test_probe_command_gives_the_random_floor(tmp_path):
    code = main(
        [
            "probe",
            "random:ijepa-cpu",
            "data.size=40",
            "--train",
            "20",
            "--val",
            "5",
            "--test",
            "10",
            "--probes",
            "knn",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0 and "count" in json.loads((tmp_path / "probe.json").read_text())["knn"]


def test_text_use_compares_true_and_rolled_captions_on_the_same_batch(tmp_path):
    from jepakit.eval import text_use
    from jepakit.train import train

    cfg = tiny_config(
        "tc-jepa",
        masker={"min_keep": 4},
        data={"size": 16},
        tokenizer={"fit_samples": 16},
        train={"steps": 2, "batch_size": 4, "warmup_steps": 1},
    )
    result = train(cfg, tmp_path, progress=False)
    model = load_method(tmp_path)
    for k, v in result["model"].state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    data = cfg.data.build()
    out = text_use(model, data, batches=2, batch_size=4)
    assert set(out) == {"true", "shuffled", "gap", "o_positive"} and 0 <= out["o_positive"] <= 1
    assert out["true"] != out["shuffled"], "other captions change the prediction"
    assert text_use(model, data, batches=2, batch_size=4) == out, "same batches, same masks"
    with pytest.raises(ValueError, match=r"needs 64 samples"):
        text_use(model, data, batches=16, batch_size=4)


def test_text_use_refuses_a_model_without_text(checkpoint):
    from jepakit.eval import text_use

    with pytest.raises(ValueError, match=r"reads no text"):
        text_use(load_method(checkpoint[0]), None)


def test_an_export_folder_is_probed_on_scenes_at_its_size(checkpoint, tmp_path):
    from jepakit.eval.evaluate import probe_data
    from jepakit.export import export_timm

    path, model = checkpoint
    encoder, cfg = load_eval_encoder(export_timm(path, tmp_path / "export"))
    assert cfg is None
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder(images), model.target_encoder(images), atol=1e-5, rtol=1e-5)
    data = probe_data(None, encoder, ["data.size=10"]).fit
    assert data.image_size == 32 and data.seed == 1 and data.size == 10
    folder = probe_data(None, encoder, ["data=imagefolder", "data.root=/somewhere", "data.image_size=32"]).fit
    assert folder.name == "imagefolder" and folder.root == "/somewhere"
    with pytest.raises(ValueError, match=r"unknown field 'rot'"):
        probe_data(None, encoder, ["data.rot=1"])


def test_the_random_floor_is_the_seeds_mean_and_spread_and_is_cached(encoder, scenes, tmp_path, monkeypatch):
    from jepakit.eval import floor as floor_module
    from jepakit.eval.floor import beats, flatten, random_floor

    enc_cfg, data_cfg = encoder.config, tiny_config("ijepa", data={"seed": 5}).data
    settings = dict(train=16, val=4, test=12, probes=("knn",))
    floor = random_floor(enc_cfg, data_cfg, seeds=(0, 1), cache=tmp_path, **settings)
    values = [flatten(run)["knn/count"] for run in floor["runs"]]
    assert floor["mean"]["knn/count"] == pytest.approx(sum(values) / 2)
    assert floor["std"]["knn/count"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    torch.manual_seed(1)
    again = evaluate(enc_cfg.build().eval(), data_cfg.build(), seed=0, **settings)
    assert again["knn"]["count"] == values[1], "seed 1's floor is a randomly initialised encoder from seed 1"
    monkeypatch.setattr(floor_module, "evaluate", lambda *a, **k: pytest.fail("the cached floor was recomputed"))
    assert random_floor(enc_cfg, data_cfg, seeds=(0, 1), cache=tmp_path, **settings) == floor
    assert len(list(tmp_path.iterdir())) == 1
    changed = data_cfg.build()  # the same config, other samples: a data generator changed between versions
    changed.__class__ = type(
        "Regenerated", (type(changed),), {"__getitem__": lambda self, i: {"image": torch.zeros(1)}}
    )
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        random_floor(enc_cfg, data_cfg, seeds=(0, 1), cache=tmp_path, built=(changed, None), **settings)
    assert beats(0.6, 0.5, 0.04) and not beats(0.58, 0.5, 0.04) and not beats(0.4, 0.5, 0.0)
