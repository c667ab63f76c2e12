"""Official I-JEPA / V-JEPA checkpoints into jepakit runs.

The checkpoints here are written in the official layout (``encoder``, ``predictor`` and ``target_encoder``
state dicts with DDP's ``module.`` prefixes, the official predictor's names, its fixed positions, the
optimiser's state beside) from independent implementations at a tiny size of the released structure:
timm's VisionTransformer as the encoders and lightly's I-JEPA predictor (a port of the official one). The
imported run must compute what they compute, in float64.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch

from jepakit import ConfigError, UnknownChoiceError
from jepakit.checkpoint import BadCheckpointError
from jepakit.cli import main
from jepakit.official import import_weights
from jepakit.runs import load_eval_encoder, load_method

IMAGE, PATCH, WIDTH, PRED = 32, 8, 192, 96  # ViT-tiny's width and heads (3), a 4 x 4 grid, predictor 96 wide
GRID = IMAGE // PATCH


def sincos(dim: int) -> torch.Tensor:
    from lightly.models import utils

    return torch.from_numpy(utils.get_2d_sincos_pos_embed(dim, GRID, cls_token=False)).float()[None]


def official_parts(seed: int = 0):
    """(encoder, target encoder, predictor): timm ViTs and lightly's predictor, randomly initialised."""
    import timm
    from lightly.models.modules.ijepa_timm import IJEPAPredictorTIMM

    torch.manual_seed(seed)
    kwargs: dict[str, Any] = dict(img_size=IMAGE, patch_size=PATCH, embed_dim=WIDTH, depth=2, num_heads=3)
    kwargs |= dict(class_token=False, global_pool="avg", fc_norm=False, num_classes=0)
    encoders: list[Any] = [timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs) for _ in range(2)]
    for enc in encoders:
        enc.pos_embed.data.copy_(sincos(WIDTH))
    predictor = IJEPAPredictorTIMM(num_patches=GRID**2, depth=2, mlp_dim=WIDTH, predictor_embed_dim=PRED, num_heads=3)
    predictor.decoder.pos_embed.data.copy_(sincos(PRED))
    torch.nn.init.normal_(predictor.decoder.mask_token, std=0.02)
    return encoders[0], encoders[1], predictor


def official_checkpoint(path, parts) -> None:
    """Write ``parts`` under the official names: the encoders as timm's, the predictor's renamed."""
    encoder, target, predictor = parts
    names = {"decoder.blocks.": "predictor_blocks.", "decoder.norm.": "predictor_norm."}
    pred = {}
    for key, value in predictor.state_dict().items():
        for old, new in names.items():
            key = key.replace(old, new)
        pred[key.replace("decoder.mask_token", "mask_token").replace("decoder.pos_embed", "predictor_pos_embed")] = (
            value
        )
    state = {
        "encoder": {f"module.{k}": v for k, v in encoder.state_dict().items()},
        "predictor": {f"module.{k}": v for k, v in pred.items()},
        "target_encoder": {f"module.{k}": v for k, v in target.state_dict().items()},
        "opt": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
        "scaler": None,
        "epoch": 3,
        "loss": 0.25,
        "batch_size": 8,
        "world_size": 1,
        "lr": 1e-3,
    }
    torch.save(state, path)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    parts = official_parts()
    official_checkpoint(root / "IN1K-vit.t.8-3e.pth.tar", parts)
    import_weights(root / "IN1K-vit.t.8-3e.pth.tar", "ijepa", root / "run")
    return root, parts


def test_the_imported_encoders_compute_what_the_official_weights_do(imported):
    """jepakit's encoders take [0, 1] images and normalise them by ImageNet's statistics; the official ones
    take images the loader normalised alike (the same constants, as jepakit holds them)."""
    root, (encoder, target, _) = imported
    method = load_method(root / "run").double()
    x = torch.rand(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    normalised = (x - method.encoder.pixel_mean) / method.encoder.pixel_std
    for ours, theirs in ((method.encoder, encoder), (method.target_encoder, target)):
        assert torch.allclose(ours(x), theirs.double().eval().forward_features(normalised), atol=1e-10)
    probed, experiment = load_eval_encoder(root / "run")
    assert torch.allclose(probed.double()(x), target.forward_features(normalised), atol=1e-10)
    assert (
        experiment is not None and experiment.method.encoder.num_heads == 3 and experiment.method.predictor.depth == 2
    )


def test_the_imported_predictor_computes_what_the_official_one_does(imported):
    """To float64 precision given the same fixed positions; jepakit recomputes those (sin-cos, not weights),
    equal to the checkpoint's to one float32 rounding (checked when importing), so to 1e-6 as they are."""
    root, (_, _, official) = imported
    method = load_method(root / "run").double()
    predictor = copy.deepcopy(official).double().eval()
    g = torch.Generator().manual_seed(1)
    context = torch.stack([torch.randperm(GRID**2, generator=g)[:10] for _ in range(2)])
    targets = torch.stack([torch.stack([torch.randperm(GRID**2, generator=g)[:4] for _ in range(3)]) for _ in range(2)])
    z = torch.randn(2, 10, WIDTH, generator=g, dtype=torch.float64)
    ours = method.predictor(z, context, targets, (GRID, GRID))  # [B, M, Kt, D]

    def theirs() -> torch.Tensor:  # [M * B, Kt, D], mask-major -> [B, M, Kt, D]
        return predictor(z, [context], list(targets.unbind(1))).view(3, 2, 4, WIDTH).transpose(0, 1)

    assert torch.allclose(ours, theirs(), atol=1e-6)
    predictor.decoder.pos_embed.data.copy_(method.predictor.pos_embed_for((GRID, GRID), torch.device("cpu")))
    assert torch.allclose(ours, theirs(), atol=1e-10)


def test_an_imported_run_is_read_like_any_run_but_not_resumed(imported, capsys):
    """Its config says where the weights came from; a frozen teacher and init_from take it; --resume
    refuses it in one line (there is no optimiser state)."""
    from jepakit import get_config

    root, _ = imported
    meta = json.loads((root / "run" / "config.json").read_text())
    assert meta["imported"]["format"] == "ijepa" and meta["imported"]["path"].endswith("IN1K-vit.t.8-3e.pth.tar")
    student = dict(encoder={"embed_dim": 192, "depth": 2, "num_heads": 3, "patch_size": PATCH}, image_size=IMAGE)
    cfg = get_config("salt-cpu", f"target_updater.checkpoint={root / 'run'}", teacher_run="none", **student)
    assert "target_encoder" in cfg.build().report()
    assert main(["train", "ijepa-tiny", "--out", str(root / "run"), "--resume", "--quiet"]) == 2
    assert "no optimiser state: start a new run from them with train.init_from=" in capsys.readouterr().err


def test_a_checkpoint_that_does_not_fit_fails_naming_the_keys(tmp_path):
    encoder, target, predictor = official_parts()
    official_checkpoint(tmp_path / "ok.pth.tar", (encoder, target, predictor))
    state = torch.load(tmp_path / "ok.pth.tar", weights_only=True)
    state["target_encoder"]["module.blocks.0.attn.extra"] = torch.zeros(3)
    del state["predictor"]["module.predictor_norm.weight"]
    torch.save(state, tmp_path / "bad.pth.tar")
    with pytest.raises(
        BadCheckpointError,
        match=r"missing: predictor.predictor_norm.weight; unexpected: target_encoder.blocks.0.attn.extra",
    ):
        import_weights(tmp_path / "bad.pth.tar", "ijepa", tmp_path / "run")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(BadCheckpointError, match="no encoder, predictor, target_encoder"):
        import_weights(tmp_path / "other.pt", "ijepa", tmp_path / "run2")
    with pytest.raises(UnknownChoiceError, match="unknown weights format 'ijepa2'"):
        import_weights(tmp_path / "ok.pth.tar", "ijepa2", tmp_path / "run3")
    assert not (tmp_path / "run").exists()


def same_size(**fields):
    """ijepa-tiny at the imported checkpoint's size (ViT 192/2, 3 heads, 8 px patches at 32 px, predictor 96/2)."""
    from jepakit import get_config

    size = dict(encoder={"depth": 2, "patch_size": PATCH}, predictor={"embed_dim": PRED, "depth": 2}, image_size=IMAGE)
    return get_config("ijepa-tiny", masker={"min_keep": 4}, **{**size, **fields})


def test_init_from_starts_a_new_run_from_an_imported_run_an_export_or_the_official_file(imported, tmp_path):
    """Every weight equals the source's (an export's encoder goes to both encoders); a weight of another shape
    fails naming it unless init_prefixes leaves it out; a missing source fails when the config is made."""
    from jepakit import get_config
    from jepakit.config import MissingFileError
    from jepakit.export import export_timm
    from jepakit.weights import init_weights

    root, _ = imported
    source = load_method(root / "run").state_dict()
    for where in (root / "run", root / "IN1K-vit.t.8-3e.pth.tar"):
        method = same_size().build()
        line = init_weights(method, where)
        assert line.startswith(f"initialised {len(source)} of the method's {len(source)} weights from")
        assert all(torch.equal(v, source[k]) for k, v in method.state_dict().items())
    export = export_timm(root / "run", tmp_path / "export")
    method = same_size().build()
    init_weights(method, export)
    # the evaluated (target) encoder, to both encoders; its export folds the pixel normalisation into the patch
    # embedding, which reading it back unfolds (to rounding)
    teacher = {k.split(".", 1)[1]: v for k, v in source.items() if k.startswith("target_encoder.")}
    got = {k: v for k, v in method.state_dict().items() if k.split(".", 1)[0] in ("encoder", "target_encoder")}
    assert got and all(torch.allclose(v, teacher[k.split(".", 1)[1]], atol=1e-5) for k, v in got.items())
    wider = same_size(predictor={"embed_dim": 48, "depth": 2}).build()
    with pytest.raises(ConfigError, match=r"shapes differ: predictor.mask_token \(1, 1, 96\) \(here \(1, 1, 48\)\)"):
        init_weights(wider, root / "run")
    assert "stay as initialised" in init_weights(wider, root / "run", ["encoder", "target_encoder"])
    with pytest.raises(MissingFileError, match=r"train.init_from='nowhere' does not exist"):
        get_config("ijepa-tiny", "train.init_from=nowhere")


def test_a_run_from_init_from_logs_its_source_and_trains_from_step_0(imported, tmp_path):
    from jepakit.train import train

    root, _ = imported
    cfg = same_size(
        data={"size": 8},
        train={
            "steps": 2,
            "epochs": None,
            "warmup_epochs": None,
            "batch_size": 4,
            "warmup_steps": 1,
            "precision": "fp32",
            "init_from": str(root / "run"),
        },
    )
    lines: list[str] = []
    result = train(cfg, tmp_path / "continued", progress=False, log=lines.append)
    assert any(line.startswith("initialised") and "step 0" in line for line in lines)
    assert len(result["losses"]) == 2


def test_a_vjepa_checkpoint_maps_its_tubelets_and_per_generator_mask_tokens(tmp_path):
    """V-JEPA's layout: a 3-D patch embedding, 16 frames in tubelets of 2, one mask token per mask generator
    (``mask_tokens.0``, ``mask_tokens.1``), the predictor's 3-D positions; every weight lands where it belongs."""
    from jepakit import get_config

    size = dict(encoder={"embed_dim": WIDTH, "depth": 1, "num_heads": 3, "patch_size": PATCH}, image_size=IMAGE)
    method = get_config("vjepa", predictor={"embed_dim": PRED, "depth": 1}, **size).build()
    ours = method.state_dict()
    pred = {
        k.removeprefix("predictor.").replace("blocks.", "predictor_blocks.", 1): v
        for k, v in ours.items()
        if k.startswith("predictor.")
    }
    tokens = pred.pop("mask_token")
    pred |= {f"mask_tokens.{i}": t[None] for i, t in enumerate(tokens)}
    pred["predictor_pos_embed"] = method.predictor.pos_embed_for((8, GRID, GRID), torch.device("cpu"))
    state = {
        p: {f"module.{k.split('.', 1)[1]}": v for k, v in ours.items() if k.startswith(p + ".")}
        for p in ("encoder", "target_encoder")
    }
    torch.save(
        {**state, "predictor": {f"module.{k}": v for k, v in pred.items()}, "epoch": 1}, tmp_path / "vitl16.pth.tar"
    )
    assert (
        main(["import-weights", str(tmp_path / "vitl16.pth.tar"), "--format", "vjepa", "--out", str(tmp_path / "run")])
        == 0
    )
    loaded = load_method(tmp_path / "run")
    assert (
        loaded.config.num_frames == 16 and loaded.config.tubelet_size == 2 and loaded.predictor.mask_token.shape[0] == 2
    )
    assert all(torch.equal(v, ours[k]) for k, v in loaded.state_dict().items())


class OfficialVideoViT(torch.nn.Module):
    """The official V-JEPA encoder's forward, written here from timm's blocks: a 3-D patch embedding over
    tubelets, fixed positions added, pre-LN blocks, a final LayerNorm; the official parameter names."""

    def __init__(self, width: int, depth: int, heads: int, tubelet: int, patch: int, tokens: int) -> None:
        import functools

        from timm.models.vision_transformer import Block

        super().__init__()
        self.patch_embed: Any = torch.nn.Module()
        self.patch_embed.proj = torch.nn.Conv3d(3, width, (tubelet, patch, patch), stride=(tubelet, patch, patch))
        self.pos_embed = torch.nn.Parameter(torch.randn(1, tokens, width) * 0.02, requires_grad=False)
        norm = functools.partial(torch.nn.LayerNorm, eps=1e-6)
        self.blocks = torch.nn.ModuleList(
            Block(width, heads, 4.0, qkv_bias=True, norm_layer=norm)  # type: ignore[arg-type]  # timm takes a partial
            for _ in range(depth)
        )
        self.norm = norm(width)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # [B, 3, T, H, W], normalised -> [B, N, D]
        x = self.patch_embed.proj(clips).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def test_an_imported_vjepa_encoder_computes_what_the_official_forward_does(tmp_path):
    from jepakit import get_config

    size = dict(encoder={"embed_dim": WIDTH, "depth": 1, "num_heads": 3, "patch_size": PATCH}, image_size=IMAGE)
    method = get_config("vjepa", predictor={"embed_dim": PRED, "depth": 1}, **size).build()
    torch.manual_seed(3)
    official = OfficialVideoViT(WIDTH, 1, 3, 2, PATCH, 8 * GRID**2)
    official.pos_embed.data.copy_(method.encoder.pos_embed)  # the fixed 3-D sin-cos table, as released
    pred = {
        k.removeprefix("predictor.").replace("blocks.", "predictor_blocks.", 1): v
        for k, v in method.state_dict().items()
        if k.startswith("predictor.")
    }
    pred |= {f"mask_tokens.{i}": t[None] for i, t in enumerate(pred.pop("mask_token"))}
    encoder = {f"module.{k}": v for k, v in official.state_dict().items()}
    torch.save(
        {"encoder": encoder, "target_encoder": encoder, "predictor": {f"module.{k}": v for k, v in pred.items()}},
        tmp_path / "v.pth.tar",
    )
    import_weights(tmp_path / "v.pth.tar", "vjepa", tmp_path / "run")
    ours = load_method(tmp_path / "run").target_encoder.double()
    clips = torch.rand(2, 3, 16, IMAGE, IMAGE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    normalised = (clips - ours.pixel_mean[..., None]) / ours.pixel_std[..., None]
    assert torch.allclose(ours(clips), official.double().eval()(normalised), atol=1e-10)


def test_init_from_a_timm_model_by_name_reads_its_pretrained_weights_through_timms_cache(tmp_path, monkeypatch):
    """``train.init_from=timm:NAME``: timm's own loader finds NAME's weights in the hub cache (populated here as a
    download leaves it; no network); the blocks and norm go to both encoders as they are, the patch embedding
    re-expressed so that on [0, 1] images it computes what timm's computes on images normalised by the model's
    own statistics (0.5, 0.5 for this one), to float32 rounding; its class token and learned positions stay
    out. A name timm has no weights for is refused in one line."""
    import huggingface_hub
    import timm
    from safetensors.torch import save
    from test_hub import cache_as_downloaded

    from jepakit import get_config
    from jepakit.train import train

    torch.manual_seed(0)
    reference = timm.create_model("test_vit", pretrained=False, num_classes=0).double()  # 64 wide, 6 blocks, 2 heads
    state = {k: v.float() for k, v in reference.state_dict().items()}
    cache_as_downloaded(tmp_path / "hub", "timm/test_vit.r160_in1k", {"model.safetensors": save(state)})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    shape = {"embed_dim": 64, "depth": 6, "num_heads": 2, "mlp_ratio": 3.0, "patch_size": 16}
    train_fields = {"steps": 1, "epochs": None, "warmup_epochs": None, "batch_size": 4, "warmup_steps": 0}
    train_fields["init_from"] = "timm:test_vit.r160_in1k"
    cfg = get_config("ijepa-tiny", encoder=shape, masker={"min_keep": 4}, data={"size": 8}, train=train_fields)
    log: list[str] = []
    result = train(cfg, tmp_path / "run", progress=False, until=0, log=log.append)
    method = result["model"].double()
    assert any("from the timm model 'timm:test_vit.r160_in1k'" in line for line in log)
    ours = method.target_encoder.state_dict()
    assert all(torch.equal(ours[k], v.double()) for k, v in state.items() if k.startswith(("blocks.", "norm.")))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    normalised = (x - method.target_encoder.pixel_mean) / method.target_encoder.pixel_std
    theirs = reference.patch_embed.proj((x - 0.5) / 0.5)
    assert torch.allclose(method.target_encoder.patch_embed.proj(normalised), theirs, atol=1e-5)  # float32 weights
    with pytest.raises(ConfigError, match=r"train.init_from=timm:test_vit2.r160_in1k: timm cannot give"):
        train(get_config(cfg, "train.init_from=timm:test_vit2.r160_in1k"), tmp_path / "other", progress=False)


class OfficialVideoPredictor(torch.nn.Module):
    """The official V-JEPA predictor's forward, written here from timm's blocks with its parameter names: the
    context mapped to the predictor's width plus the positions of its patches; per target patch the mask token
    of the mask generator that drew it plus its position; both through pre-LN blocks, a LayerNorm and a map
    back to the encoder's width, read at the target tokens."""

    def __init__(self, width: int, pred: int, depth: int, heads: int, tokens: int, generators: int) -> None:
        import functools

        from timm.models.vision_transformer import Block

        super().__init__()
        self.predictor_embed = torch.nn.Linear(width, pred)
        self.mask_tokens = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(1, 1, pred)) for _ in range(generators)
        )
        self.predictor_pos_embed = torch.nn.Parameter(torch.zeros(1, tokens, pred), requires_grad=False)
        norm = functools.partial(torch.nn.LayerNorm, eps=1e-6)
        self.predictor_blocks = torch.nn.ModuleList(
            Block(pred, heads, 4.0, qkv_bias=True, norm_layer=norm)  # type: ignore[arg-type]  # timm takes a partial
            for _ in range(depth)
        )
        self.predictor_norm = norm(pred)
        self.predictor_proj = torch.nn.Linear(pred, width)

    def forward(self, ctxt: torch.Tensor, masks_ctxt: torch.Tensor, masks_tgt: torch.Tensor, mask_index: int):
        """ctxt [B, Nc, width], masks_* long [B, N*] patch indices -> [B, Nt, width]."""
        pos = self.predictor_pos_embed.expand(len(ctxt), -1, -1)
        at = lambda index: torch.gather(pos, 1, index[..., None].expand(-1, -1, pos.shape[-1]))  # noqa: E731
        x = self.predictor_embed(ctxt) + at(masks_ctxt)
        queries = self.mask_tokens[mask_index].expand(len(ctxt), masks_tgt.shape[1], -1) + at(masks_tgt)
        x = torch.cat([x, queries], dim=1)
        for block in self.predictor_blocks:
            x = block(x)
        return self.predictor_proj(self.predictor_norm(x)[:, ctxt.shape[1] :])


def test_an_imported_vjepa_predictor_computes_what_the_official_forward_does(tmp_path):
    """Two mask generators, each with its own mask token: the rows of each generator's masks (generator-major,
    as jepakit stacks them) are predicted with that generator's token, as the official predictor is called once
    per generator with its ``mask_index``; to float64 precision."""
    from jepakit import get_config

    size = dict(encoder={"embed_dim": WIDTH, "depth": 1, "num_heads": 3, "patch_size": PATCH}, image_size=IMAGE)
    method = get_config("vjepa", predictor={"embed_dim": PRED, "depth": 2}, **size).build()
    grid, tokens = (8, GRID, GRID), 8 * GRID**2
    torch.manual_seed(4)
    official = OfficialVideoPredictor(WIDTH, PRED, 2, 3, tokens, generators=2)
    official.predictor_pos_embed.data.copy_(method.predictor.pos_embed_for(grid, torch.device("cpu")))
    encoder = {f"module.{k}": v for k, v in method.encoder.state_dict().items()}
    predictor = {f"module.{k}": v for k, v in official.state_dict().items()}
    torch.save({"encoder": encoder, "target_encoder": encoder, "predictor": predictor}, tmp_path / "v.pth.tar")
    import_weights(tmp_path / "v.pth.tar", "vjepa", tmp_path / "run")
    ours = load_method(tmp_path / "run").predictor.double().eval()
    official = official.double().eval()
    g = torch.Generator().manual_seed(2)
    images, kc, kt = 2, 20, 6
    context = torch.stack([torch.randperm(tokens, generator=g)[:kc] for _ in range(2 * images)])  # [R, Kc]
    targets = torch.stack([torch.randperm(tokens, generator=g)[:kt] for _ in range(2 * images)])  # [R, Kt]
    z = torch.randn(2 * images, kc, WIDTH, generator=g, dtype=torch.float64)
    with torch.no_grad():
        predicted = ours(z, context, targets[:, None], grid, repeats=2)[:, 0]  # [R, Kt, D]
        for generator in (0, 1):
            rows = slice(generator * images, (generator + 1) * images)
            theirs = official(z[rows], context[rows], targets[rows], mask_index=generator)
            assert torch.allclose(predicted[rows], theirs, atol=1e-10)


def vjepa2_rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """V-JEPA 2's ``rotate_queries_or_keys``, as released: x [B, H, N, D], pos [B, H, N] or [N]; the
    frequencies tiled (not repeated) across the D channels, adjacent channels paired."""
    d = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=x.dtype) / (d / 2.0))
    freq = pos.to(x.dtype)[..., None] * omega
    sin, cos = freq.sin().repeat(*([1] * (freq.ndim - 1)), 2), freq.cos().repeat(*([1] * (freq.ndim - 1)), 2)
    y = x.unflatten(-1, (-1, 2))
    y = torch.stack((-y[..., 1], y[..., 0]), dim=-1).flatten(-2)
    return x * cos + y * sin


class OfficialRopeAttention(torch.nn.Module):
    """V-JEPA 2's ``RoPEAttention``: time, row and column each turn 2 * ((head_dim // 3) // 2) channels of
    every head's queries and keys, in that order, the rest unturned; positions from the token ids."""

    def __init__(self, dim: int, heads: int, grid: tuple[int, int, int]) -> None:
        super().__init__()
        self.heads, self.grid = heads, grid
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.part = 2 * ((dim // heads // 3) // 2)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:  # ids [B, N] token positions
        b, n, c = x.shape
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        _, h, w = self.grid
        ids = ids[:, None].expand(-1, self.heads, -1)
        places = (ids // (h * w), (ids % (h * w)) // w, ids % w)
        turned = []
        for t in (q, k):
            parts = [vjepa2_rotate(t[..., i * self.part : (i + 1) * self.part], p) for i, p in enumerate(places)]
            turned.append(torch.cat([*parts, t[..., 3 * self.part :]], dim=-1))
        out = torch.nn.functional.scaled_dot_product_attention(turned[0], turned[1], v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class OfficialRopeBlock(torch.nn.Module):
    def __init__(self, dim: int, heads: int, grid: tuple[int, int, int]) -> None:
        from timm.layers import Mlp

        super().__init__()
        self.norm1, self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6), torch.nn.LayerNorm(dim, eps=1e-6)
        self.attn = OfficialRopeAttention(dim, heads, grid)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), ids)
        return x + self.mlp(self.norm2(x))


class OfficialVJEPA2(torch.nn.Module):
    """V-JEPA 2's encoder (no position table: RoPE in every block) and predictor (10 zero-initialised mask
    tokens of which generator g reads token g; context and queries sorted by position before the blocks,
    as released, and put back after), written from the released code's structure with its names."""

    def __init__(self, grid: tuple[int, int, int], tokens: int = 10) -> None:
        super().__init__()
        self.encoder: Any = torch.nn.Module()
        self.encoder.patch_embed = torch.nn.Module()
        self.encoder.patch_embed.proj = torch.nn.Conv3d(3, WIDTH, (2, PATCH, PATCH), stride=(2, PATCH, PATCH))
        self.encoder.blocks = torch.nn.ModuleList(OfficialRopeBlock(WIDTH, 3, grid) for _ in range(2))
        self.encoder.norm = torch.nn.LayerNorm(WIDTH, eps=1e-6)
        self.predictor: Any = torch.nn.Module()
        self.predictor.predictor_embed = torch.nn.Linear(WIDTH, PRED)
        self.predictor.mask_tokens = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(1, 1, PRED)) for _ in range(tokens)
        )
        self.predictor.predictor_blocks = torch.nn.ModuleList(OfficialRopeBlock(PRED, 12, grid) for _ in range(2))
        self.predictor.predictor_norm = torch.nn.LayerNorm(PRED, eps=1e-6)
        self.predictor.predictor_proj = torch.nn.Linear(PRED, WIDTH)

    def encode(self, clips: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.encoder.patch_embed.proj(clips).flatten(2).transpose(1, 2)
        if ids is None:
            ids = torch.arange(x.shape[1])[None].expand(len(x), -1)
        else:
            x = torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))
        for block in self.encoder.blocks:
            x = block(x, ids)
        return self.encoder.norm(x)

    def predict(self, ctxt: torch.Tensor, masks_x: torch.Tensor, masks_y: torch.Tensor, mask_index: int):
        p = self.predictor
        x = p.predictor_embed(ctxt)
        queries = p.mask_tokens[mask_index % len(p.mask_tokens)].expand(len(x), masks_y.shape[1], -1)
        x, masks = torch.cat([x, queries], dim=1), torch.cat([masks_x, masks_y], dim=1)
        order = torch.argsort(masks, dim=1)
        x = torch.stack([x[i, row] for i, row in enumerate(order)])
        masks = torch.stack([masks[i, row] for i, row in enumerate(order)])
        for block in p.predictor_blocks:
            x = block(x, masks)
        x = p.predictor_norm(x)
        back = torch.argsort(order, dim=1)
        x = torch.stack([x[i, row] for i, row in enumerate(back)])[:, ctxt.shape[1] :]
        return p.predictor_proj(x)


def test_a_vjepa2_checkpoint_computes_what_the_released_rope_forward_does(tmp_path):
    """V-JEPA 2's layout (``module.backbone.`` prefixes, no position table but a stale ``pos_embed`` the
    released loader skips, 10 mask tokens, a 12-head predictor): the importer infers rotary positions in the
    released layout, and the imported encoder (whole clips and a kept subset) and predictor (two generators
    reading tokens 0 and 1) equal the released forward written above, to float64 precision; the run probes and
    serves as a frozen teacher like any run."""
    from jepakit import get_config

    grid = (8, GRID, GRID)
    torch.manual_seed(5)
    official = OfficialVJEPA2(grid)
    encoder = {f"module.backbone.{k}": v for k, v in official.encoder.state_dict().items()}
    encoder["module.backbone.pos_embed"] = torch.zeros(1, 8 * GRID**2, WIDTH)
    predictor = {f"module.backbone.{k}": v for k, v in official.predictor.state_dict().items()}
    torch.save({"encoder": encoder, "target_encoder": encoder, "predictor": predictor}, tmp_path / "vitl.pt")
    overrides = ["encoder.num_heads=3", f"image_size={IMAGE}"]
    import_weights(tmp_path / "vitl.pt", "vjepa2", tmp_path / "run", overrides)
    method = load_method(tmp_path / "run").double().eval()
    cfg = method.config
    assert (cfg.encoder.positions, cfg.predictor.positions, cfg.predictor.num_heads) == ("rope-vjepa2",) * 2 + (12,)
    assert method.predictor.mask_token.shape[0] == 10 and "encoder.pos_embed" not in method.state_dict()
    official = official.double().eval()
    g = torch.Generator().manual_seed(1)
    clips = torch.rand(2, 3, 16, IMAGE, IMAGE, generator=g, dtype=torch.float64)
    normalised = (clips - method.encoder.pixel_mean[..., None]) / method.encoder.pixel_std[..., None]
    keep = torch.stack([torch.randperm(8 * GRID**2, generator=g)[:40] for _ in range(2)])
    with torch.no_grad():
        assert torch.allclose(method.target_encoder(clips), official.encode(normalised), atol=1e-10)
        assert torch.allclose(method.encoder(clips, keep), official.encode(normalised, keep), atol=1e-10)
        images, kc, kt = 2, 20, 6
        context = torch.stack([torch.randperm(8 * GRID**2, generator=g)[:kc] for _ in range(2 * images)])
        targets = torch.stack([torch.randperm(8 * GRID**2, generator=g)[:kt] for _ in range(2 * images)])
        z = torch.randn(2 * images, kc, WIDTH, generator=g, dtype=torch.float64)
        predicted = method.predictor(z, context, targets[:, None], grid, repeats=2)[:, 0]
        for generator in (0, 1):
            rows = slice(generator * images, (generator + 1) * images)
            theirs = official.predict(z[rows], context[rows], targets[rows], mask_index=generator)
            assert torch.allclose(predicted[rows], theirs, atol=1e-10)
    probed, _ = load_eval_encoder(tmp_path / "run")  # what `jepakit probe RUN` reads: the rotary encoder
    with torch.no_grad():
        assert torch.allclose(probed.double()(clips), official.encode(normalised), atol=1e-10)
    size = {"embed_dim": WIDTH, "depth": 2, "num_heads": 3, "patch_size": PATCH, "positions": "rope-vjepa2"}
    student = get_config(
        "salt-video-cpu", f"target_updater.checkpoint={tmp_path / 'run'}", teacher_run="none", encoder=size
    ).build()  # the imported encoder as a frozen teacher (a SALT student on clips)
    assert all(
        torch.equal(v, method.target_encoder.state_dict()[k]) for k, v in student.target_encoder.state_dict().items()
    )
