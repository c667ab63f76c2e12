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


def test_rerecording_a_section_keeps_its_hand_written_reading(tmp_path, monkeypatch):
    common = pytest.importorskip("_common")
    monkeypatch.setattr(common, "RESULTS", tmp_path / "RESULTS.md")
    common.record("Other", "| x |\n|---|\n| 1 |")
    common.record("Rows", "note\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nStatus: two seeds.\n\nReading: kept.")
    assert common.section_notes("Rows") == "Status: two seeds.\n\nReading: kept."
    assert common.section_notes("Other") == "" and common.section_notes("Missing") == ""


def test_the_student_loss_against_its_online_probes_is_a_rank_correlation():
    quality = pytest.importorskip("quality")
    log = [{"step": s, "loss": 1.0 / s, "probe/linear/count": 0.1 * s, "probe/lidar": 5.0 - s} for s in range(1, 6)]
    log.insert(2, {"step": 2.5, "loss": 0.3})  # a step without probes does not count
    assert quality.loss_tracks_probes(log) == pytest.approx({"linear/count": -1.0, "lidar": 1.0})
    assert quality.loss_tracks_probes(log[:2]) == {}


def test_every_planned_quality_row_makes_a_config_seeded_in_every_stage():
    quality = pytest.importorskip("quality")
    for name, (recipe, overrides, seed) in quality.runs().items():
        if name.startswith("digits-"):
            continue  # their data is written on first use (scikit-learn's digits as PNG folders)
        cfg = quality.config_of(recipe, overrides, seed)
        assert cfg.train.seed == seed, name
        if cfg.teacher_run is not None:
            assert cfg.teacher_run.train.seed == seed, f"{name}: SALT's teacher takes the row's seed"
    assert quality.untrained("video-frames-random-s2") and quality.untrained("random-s0")
    assert not quality.untrained("video-vjepa-s0") and not quality.untrained("tc-jepa-s1")


def test_the_small_data_plan_trains_on_train_splits_and_tables_against_the_floor(tmp_path, monkeypatch):
    small = pytest.importorskip("small_data")
    for dataset in small.SETS:
        for method in small.METHODS:
            cfg = small.config(dataset, method, 2)
            assert (cfg.data.name, cfg.data.split, cfg.train.seed) == (dataset, "train", 2)
            if cfg.teacher_run is not None:
                assert (cfg.teacher_run.data.name, cfg.teacher_run.train.seed) == (dataset, 2)
    screened = small.config("digits", "ijepa", 0, ("train.lr=2.5e-4", "target_updater.momentum_start=0.996"))
    assert (screened.train.lr, screened.target_updater.momentum_start, screened.data.name) == (2.5e-4, 0.996, "digits")

    def row(method, seed, knn, rank=5.0, warned=False):
        probe = {p: {"label": knn} for p in small.PROBES} | {"monitors": {"effective_rank": rank}}
        curve = [[100, 1.0, knn - 0.1], [200, 2.0, knn]]
        return {
            "set": "faces",
            "method": method,
            "seed": seed,
            "probe": probe,
            "cpu_minutes": 2.0,
            "collapse_warning": warned,
            "curve": curve if method != "random" else [],
        }

    found = [row("random", s, 0.60 + 0.01 * s) for s in range(3)] + [row("ijepa", s, 0.70) for s in range(3)]
    found += [row("mae", s, 0.61, rank=1.0, warned=s == 0) for s in range(3)]
    text = small.set_table("faces", found)
    ijepa, mae = (next(line for line in text.splitlines() if line.startswith(f"| {m} ")) for m in ("ijepa", "mae"))
    assert ijepa.endswith("| 0 of 3 | linear, knn |")
    assert mae.endswith("| 1 of 3 | neither (its floor: random-xavier) |")  # MAE's init has its own floor
    # 0.05 above the floor (0.61 +- 0.01) is more than twice the floor's spread but not twice its own (0.06)
    noisy = small.set_table("faces", found + [row("c-jepa", s, 0.60 + 0.06 * s) for s in range(3)])
    assert next(line for line in noisy.splitlines() if line.startswith("| c-jepa ")).endswith("| neither |")
    assert small.plot("faces", found, tmp_path / "faces.png").stat().st_size > 0
    # ijepa's mean curve: kNN 0.60 at 1 minute, 0.70 at 2; a peer ending at 0.65 after 3 minutes is reached
    # half-way between the snapshots, at 1.5 minutes: 2x the peer's speed
    peer = [{**row("lightly-ijepa", s, 0.65), "cpu_minutes": 3.0} for s in range(3)]
    said = small.time_to_quality("faces", found + peer)
    assert "lightly-ijepa: 0.650 in 3.00 CPU minutes" in said and "| ijepa | 1.50 | 2.00x |" in said
    # lightly's I-JEPA starts from lightly's own init: its verdict reads against that floor, which is no peer
    own = [{**row("lightly-random", s, 0.64 + 0.01 * s), "cpu_minutes": 0.0, "curve": []} for s in range(3)]
    text = small.set_table("faces", found + peer + own)
    assert "| lightly-ijepa | 3 |" in text and text.count("neither (its floor: lightly-random) |") == 1
    assert "lightly-ijepa: 0.650" in small.time_to_quality("faces", found + peer + own)
    assert small.minutes_to([(1.0, 0.5), (2.0, 0.6)], 0.7) is None and small.minutes_to([(1.0, 0.8)], 0.7) == 1.0
    # the tuning budget: screens per method, the best one beside the 3-seed default; the peers' too
    tried = [{**row("ijepa", 0, k), "overrides": [f"train.lr={k}"]} for k in (0.5, 0.75)]
    tried.append({**row("lightly-ijepa", 0, 0.9), "overrides": ["lr=0.0003"]})
    budget = small.tuning("faces", found + peer, tried)
    assert "| ijepa | 2 | 0.700 ± 0.000 | 0.750 | train.lr=0.75 |" in budget
    assert "| lightly-ijepa | 1 | 0.650 ± 0.000 | 0.900 | lr=0.0003 |" in budget and "| mae | 0 |" in budget
    assert "random" not in budget  # floors are not tuned


def test_a_peers_tuned_settings_are_recorded_as_overrides():
    peers = pytest.importorskip("small_data_peers")
    assert peers.Knobs().overrides() == [] and peers.Knobs(3e-4, 0.999).overrides() == ["lr=0.0003", "ema=0.999"]


def test_a_peers_timm_vit_is_probed_as_the_very_function_it_trained():
    """The peers train a timm ViT on ImageNet-normalised images; jepakit's encoder holding its weights reads
    the [0, 1] images and gives the same tokens, so the small-data probes score what the peer trained."""
    peers = pytest.importorskip("small_data_peers")
    vit = peers.timm_vit(seed=3).eval()
    with torch.no_grad():
        vit.pos_embed.normal_()  # a trained table, not timm's initial one
    ours = peers.as_jepakit(vit.state_dict()).eval()
    images = torch.rand(2, 3, 64, 64)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    normalised = (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), vit.forward_features(normalised), rtol=1e-5, atol=1e-5)
