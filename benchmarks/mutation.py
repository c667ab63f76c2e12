"""Mutation audit: does the test suite catch wrong results in the lines that decide them?

A curated list of mutants of correctness-critical lines (maskers, encoder, predictor,
losses, targets, conditioners, the method, the trainer, schedules, probes, configs).
Each is applied to the working tree alone, the tests that should catch it run, and the
file is restored. A mutant is killed when those tests fail. The kill rate and the
survivors are printed (and recorded in RESULTS.md with ``--record``).

A curated list rather than a generator (mutmut, cosmic-ray): those mutate every line of
every file, thousands of mutants, each needing a suite run of a minute or more on two
cores; most of them would hit logging, messages and docs. The lines here are the ones a
reviewer would pick, each mutant the kind of slip that keeps a run going with wrong
numbers.

    python benchmarks/mutation.py [--only ID ...] [--record]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import record, section_lines, section_notes, table

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


M, T = "jepakit/", "tests/"
MUTANTS = [
    # ---------------------------------------------------------------- maskers
    Mutant(
        "mask-min-keep",
        M + "masks/multiblock.py",
        "ok = ctx.sum(1) >= cfg.min_keep",
        "ok = ctx.sum(1) > cfg.min_keep",
        (T + "test_masks.py",),
        "a context of exactly min_keep is rejected",
    ),
    Mutant(
        "mask-targets-in-context",
        M + "masks/multiblock.py",
        "            ctx &= ~box_union(starts, t_shape, self.grid)",
        "            ctx &= box_union(starts, t_shape, self.grid) | True",
        (T + "test_masks.py",),
        "target patches stay in the context",
    ),
    Mutant(
        "mask-last-row",
        M + "masks/boxes.py",
        "torch.randint(0, g - s + 1, (n, k), generator=generator)",
        "torch.randint(0, max(g - s, 1), (n, k), generator=generator)",
        (T + "test_masks.py",),
        "a block never reaches the last row/column (the reference's defect)",
    ),
    Mutant(
        "mask-one-draw",
        M + "masks/boxes.py",
        "return block_shape(_uniform(*scale, generator), _uniform(*aspect, generator), grid_hw, margin)",
        "return block_shape(s := _uniform(*scale, generator), aspect[0] + (s - scale[0]) / max(scale[1] - scale[0], "
        "1e-9) * (aspect[1] - aspect[0]), grid_hw, margin)",
        (T + "test_masks.py",),
        "the independent draw takes scale and aspect from one random number",
    ),
    Mutant(
        "mask-coupled-two-draws",
        M + "masks/boxes.py",
        "aspect[0] + u * (aspect[1] - aspect[0]), grid_hw, margin)",
        "aspect[0] + float(torch.rand((), generator=generator)) * (aspect[1] - aspect[0]), grid_hw, margin)",
        (T + "test_masks.py",),
        "the coupled draw (the official collator's) draws the aspect apart",
    ),
    Mutant(
        "mask-pad-valid",
        M + "masks/base.py",
        "valid = torch.arange(packed.shape[1]) < counts[:, None]",
        "valid = torch.arange(packed.shape[1]) <= counts[:, None]",
        (T + "test_masks.py",),
        "one padding index marked valid",
    ),
    Mutant(
        "mask-truncate-biased",
        M + "masks/base.py",
        "chosen = torch.topk(keys, k, dim=1, largest=False, sorted=False).indices",
        "chosen = torch.topk(keys, k, dim=1, largest=True, sorted=False).indices",
        (T + "test_masks.py",),
        "random-truncate keeps patches outside the context",
    ),
    Mutant(
        "mask-take-repeats",
        M + "masks/base.py",
        "rows = (torch.arange(self.repeats)[:, None] * b + images.cpu()[None, :])",
        "rows = (torch.arange(self.repeats)[:, None] * 0 + images.cpu()[None, :])",
        (T + "test_masks.py", T + "test_model.py"),
        "a share of V-JEPA-style masks takes the first generator's rows",
    ),
    Mutant(
        "mask-random-swap",
        M + "masks/base.py",
        "return torch.sort(order[:, :k], dim=1).values, torch.sort(order[:, k:], dim=1).values",
        "return torch.sort(order[:, k:], dim=1).values, torch.sort(order[:, :k], dim=1).values",
        (T + "test_masks.py",),
        "random masking: target and context swapped (ratio inverted)",
    ),
    # ---------------------------------------------------------------- encoder
    Mutant(
        "enc-context-positions",
        M + "encoders/vit.py",
        "return self.patch_embed.norm(x) + gather_tokens(pos.expand(b, -1, -1), index)",
        "return self.patch_embed.norm(x) + pos[:, : index.shape[1]]",
        (T + "test_encoder.py", T + "test_oracles.py"),
        "kept patches get positions 0..K-1",
    ),
    Mutant(
        "enc-no-pixel-norm",
        M + "encoders/vit.py",
        "x = self.embed((images - self.pixel_mean.view(stats)) / self.pixel_std.view(stats), grid, index)",
        "x = self.embed(images, grid, index)",
        (T + "test_encoder.py", T + "test_export.py"),
        "the pixel normalisation is skipped",
    ),
    Mutant(
        "enc-no-final-norm",
        M + "encoders/vit.py",
        "out = self.norm(x) if norm else x",
        "out = x",
        (T + "test_encoder.py", T + "test_oracles.py"),
        "the final LayerNorm is skipped",
    ),
    Mutant(
        "enc-index-range",
        M + "encoders/vit.py",
        "int(index.max()) >= n)",
        "int(index.max()) > n)",
        (T + "test_encoder.py", T + "test_model.py"),
        "an index one past the grid is accepted",
    ),
    # ---------------------------------------------------------------- predictor
    Mutant(
        "pred-context-positions",
        M + "predictors/vit_predictor.py",
        "x = self.predictor_embed(z) + gather_tokens(pos, context)",
        "x = self.predictor_embed(z) + pos[:, :kc]",
        (T + "test_predictor.py", T + "test_oracles.py"),
        "the predictor gives the context positions 0..Kc-1",
    ),
    Mutant(
        "pred-target-positions",
        M + "predictors/vit_predictor.py",
        "queries = self._mask_tokens(rows, m, repeats) + gather_tokens(pos, targets).reshape(rows * m, kt, -1)",
        "queries = self._mask_tokens(rows, m, repeats) + gather_tokens(pos, targets.sort(-1).values * 0).reshape("
        "rows * m, kt, -1)",
        (T + "test_predictor.py", T + "test_oracles.py"),
        "mask tokens all at position 0",
    ),
    Mutant(
        "pred-block-leak",
        M + "predictors/vit_predictor.py",
        "queries = self._mask_tokens(rows, m, repeats) + gather_tokens(pos, targets).reshape(rows * m, kt, -1)",
        "queries = self._mask_tokens(rows, m, repeats) + gather_tokens(pos, targets).transpose(1, 2).reshape("
        "rows * m, kt, -1)",
        (T + "test_predictor.py", T + "test_oracles.py"),
        "each target block's queries mixed with the others'",
    ),
    Mutant(
        "pred-no-norm",
        M + "predictors/vit_predictor.py",
        "x = self.predictor_norm(self.blocks[-1](x, attn_mask=bias, rows_from=kc, packing=packing))",
        "x = self.blocks[-1](x, attn_mask=bias, rows_from=kc, packing=packing)",
        (T + "test_predictor.py", T + "test_oracles.py"),
        "no LayerNorm before the projection",
    ),
    Mutant(
        "pred-target-padding",
        M + "predictors/vit_predictor.py",
        "    return torch.cat([cv.repeat_interleave(m, dim=0), tv.reshape(rows * m, kt)], dim=1)",
        "    return torch.cat([cv.repeat_interleave(m, dim=0), torch.ones_like(tv).reshape(rows * m, kt)], dim=1)",
        (T + "test_predictor.py",),
        "padded target tokens are attended to",
    ),
    # ---------------------------------------------------------------- losses
    Mutant(
        "loss-no-target-norm",
        M + "losses/regression.py",
        "return F.layer_norm(target, target.shape[-1:]) if self.config.normalize_targets else target",
        "return target",
        (T + "test_losses.py", T + "test_oracles.py"),
        "targets not layer-normed",
    ),
    Mutant(
        "loss-padding-counted",
        M + "losses/regression.py",
        "        return (loss * w).sum() / w.sum().clamp_min(1.0)",
        "        return loss.mean()",
        (T + "test_losses.py",),
        "padded target patches count in the mean",
    ),
    Mutant(
        "loss-beta",
        M + "losses/regression.py",
        'reduction="none", beta=self.config.beta))',
        'reduction="none"))',
        (T + "test_losses.py",),
        "smooth-L1 ignores its beta",
    ),
    Mutant(
        "loss-l2-norm-squared",
        M + "losses/regression.py",
        "return torch.linalg.vector_norm(pred - target, dim=-1)",
        "return (pred - target).square().sum(-1)",
        (T + "test_losses.py",),
        "TC-JEPA's L2 norm squared",
    ),
    # ---------------------------------------------------------------- the method
    Mutant(
        "jepa-online-targets",
        M + "methods/jepa.py",
        "teacher = self.target_encoder if self.target_encoder is not None else self.encoder",
        "teacher = self.encoder",
        (T + "test_model.py", T + "test_oracles.py"),
        "targets from the online encoder instead of the target encoder",
    ),
    Mutant(
        "jepa-regularisers-dropped",
        M + "methods/jepa.py",
        "        parts.update(self.conditioner.losses(hook))\n",
        "",
        (T + "test_text.py",),
        "the conditioner's loss terms are not added",
    ),
    Mutant(
        "jepa-decay-norms",
        M + "methods/base.py",
        '(no_decay if p.ndim <= 1 or name.endswith(".bias") else decay)',
        '(no_decay if name.endswith(".bias") else decay)',
        (T + "test_model.py",),
        "LayerNorm weights decayed",
    ),
    Mutant(
        "jepa-no-ema",
        M + "methods/jepa.py",
        "        self.target_updater.update(self.encoder, self.target_encoder, step, total_steps)\n",
        "",
        (T + "test_model.py", T + "test_trainer.py"),
        "the target encoder never moves",
    ),
    Mutant(
        "jepa-conditioner-frozen",
        M + "methods/jepa.py",
        'modules = {"encoder": self.encoder, "predictor": self.predictor, "conditioner": self.conditioner}',
        'modules = {"encoder": self.encoder, "predictor": self.predictor}',
        (T + "test_text.py", T + "test_model.py"),
        "the conditioner is not optimised",
    ),
    Mutant(
        "jepa-crop",
        M + "methods/jepa.py",
        "random_resized_crop(s[key], scale, draw.sample(k))",
        "random_resized_crop(s[key], scale, draw.batch())",
        (T + "test_trainer.py", T + "test_components.py"),
        "every sample of a batch gets the same crop",
    ),
    # ---------------------------------------------------------------- conditioners
    Mutant(
        "xattn-weights-swapped",
        M + "conditioners/xattn.py",
        """            "sparse": self.config.sparse_weight * r * sparse,
            "consistency": self.config.consistency_weight * r * consistency,""",
        """            "sparse": self.config.consistency_weight * r * sparse,
            "consistency": self.config.sparse_weight * r * consistency,""",
        (T + "test_wrong_results.py",),
        "lambda weighs L_consistency and beta L_sparse",
    ),
    Mutant(
        "xattn-terms-swapped",
        M + "conditioners/xattn.py",
        "        sparse, consistency = sparse_regularisers(",
        "        consistency, sparse = sparse_regularisers(",
        (T + "test_wrong_results.py",),
        "the two regularisers trade names (and so weights)",
    ),
    Mutant(
        "caption-rows-reversed",
        M + "methods/jepa.py",
        'captions = [list(s.get("captions", [])) for s in samples]',
        'captions = [list(s.get("captions", [])) for s in samples][::-1]',
        (T + "test_wrong_results.py",),
        "the batch's captions reach the images in reverse order",
    ),
    Mutant(
        "caption-rows-rolled-in-the-predictor",
        M + "predictors/vit_predictor.py",
        "sample_index = (torch.arange(rows * m, device=z.device) // m) % images",
        "sample_index = (torch.arange(rows * m, device=z.device) // m + 1) % images",
        (T + "test_wrong_results.py",),
        "each predictor row reads the next image's captions",
    ),
    Mutant(
        "xattn-o-not-clamped",
        M + "conditioners/xattn.py",
        'hook.add("o", cos.clamp_min(0) * real)',
        'hook.add("o", cos * real)',
        (T + "test_text.py",),
        "O is the cosine, not max(cos, 0)",
    ),
    Mutant(
        "xattn-pad-words",
        M + "conditioners/xattn.py",
        'scores = scores.masked_fill(~keys.view(u, 1, 1, n * s), float("-inf"))',
        "scores = scores",
        (T + "test_text.py",),
        "pad words are attended to",
    ),
    Mutant(
        "xattn-centred-pads",
        M + "conditioners/xattn.py",
        "mean = (k * real_words).sum(2) / real_words.sum(2).clamp_min(1)  # [U, N, D]",
        "mean = k.mean(2)  # [U, N, D]",
        (T + "test_text.py",),
        "centred keys: the mean over a caption's words counts its pad words",
    ),
    Mutant(
        "xattn-consistency",
        M + "conditioners/xattn.py",
        "consistency = ((o - o.mean(0, keepdim=True)).abs().sum(-1) * weight).sum() / denom",
        "consistency = ((o - o.mean(1, keepdim=True)).abs().sum(-1) * weight).sum() / denom",
        (T + "test_text.py",),
        "L_consistency averages over tokens instead of layers",
    ),
    Mutant(
        "pool-max-to-mean",
        M + "conditioners/text.py",
        'pooled = (x if everywhere else x.masked_fill(~v, float("-inf"))).max(dim).values',
        "pooled = x.mean(dim)",
        (T + "test_text.py",),
        "captions mean-pooled where max is asked",
    ),
    # ---------------------------------------------------------------- targets
    Mutant(
        "ema-weight",
        M + "targets/ema.py",
        "torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), 1.0 - m)",
        "torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), m)",
        (T + "test_targets.py",),
        "the EMA keeps 1-m of the teacher",
    ),
    Mutant(
        "ema-shape",
        M + "targets/ema.py",
        "    p = min(max(step, 0) / ramp, 1.0)",
        "    p = min(max(step, 0) / ramp, 1.0) ** 2",
        (T + "test_targets.py",),
        "a different ramp shape with the right end points",
    ),
    Mutant(
        "ema-run-length",
        M + "targets/ema.py",
        "ramp = cfg.total_steps if cfg.total_steps is not None else total_steps",
        "ramp = cfg.total_steps if cfg.total_steps is not None else 100_000",
        (T + "test_targets.py", T + "test_config.py"),
        "the ramp ignores the run's length",
    ),
    # ---------------------------------------------------------------- trainer, pipeline, schedules
    Mutant(
        "train-wd-everywhere",
        M + "train/trainer.py",
        'group["weight_decay"] = wd * spec.weight_decay_scale',
        'group["weight_decay"] = wd',
        (T + "test_trainer.py",),
        "the weight-decay schedule hits the no-decay group",
    ),
    Mutant(
        "train-accum-scale",
        M + "train/trainer.py",
        'scaler.scale(result["loss"] / cfg.accum_steps).backward()',
        'scaler.scale(result["loss"]).backward()',
        (T + "test_trainer.py",),
        "accumulated gradients not averaged",
    ),
    Mutant(
        "train-rng-not-restored",
        M + "train/trainer.py",
        '            torch.set_rng_state(state["rng"]["torch"])  # drop-path and dropout continue their streams\n',
        "",
        (T + "test_trainer.py",),
        "a resumed run restarts the drop-path stream",
    ),
    Mutant(
        "train-total-steps",
        M + "train/trainer.py",
        "logged = method.after_step(step, laid)",
        "logged = method.after_step(step, stop)",
        (T + "test_trainer.py", T + "test_golden.py"),
        "the EMA ramp spans the stretch until --until, not the run",
    ),
    Mutant(
        "pipeline-epoch-order",
        M + "train/pipeline.py",
        "g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))",
        "g = torch.Generator().manual_seed(mix_seed(self.seed, 0))",
        (T + "test_trainer.py",),
        "every epoch visits the samples in the same order",
    ),
    Mutant(
        "pipeline-share-rows",
        M + "train/pipeline.py",
        "        rows = torch.tensor(kept, dtype=torch.long)",
        "        rows = torch.arange(len(kept))",
        (T + "test_distributed.py",),
        "a rank's samples get the first rows' masks",
    ),
    Mutant(
        "sched-warmup",
        M + "train/schedules.py",
        "return _cosine(step - warmup_steps, total_steps - warmup_steps, peak, final)",
        "return _cosine(step, total_steps, peak, final)",
        (T + "test_train.py",),
        "the cosine ignores the warm-up",
    ),
    Mutant(
        "sched-wd-ends",
        M + "train/schedules.py",
        "return _cosine(step, total_steps, start, end)",
        "return _cosine(step, total_steps, end, start)",
        (T + "test_train.py",),
        "weight decay runs 0.4 -> 0.04",
    ),
    # ---------------------------------------------------------------- probes and monitors
    Mutant(
        "probe-l2-chosen-on-test",
        M + "eval/probes.py",
        """        _lbfgs(head, x, train[1], loss_of, l2, max_iter)
        val_score = score(_apply(head, val[0]), val[1])""",
        """        _lbfgs(head, x, train[1], loss_of, l2, max_iter)
        val_score = score(_apply(head, test[0]), test[1])""",
        (T + "test_wrong_results.py",),
        "the linear probe's L2 strength is chosen on the test split",
    ),
    Mutant(
        "probe-l2-chosen-on-train",
        M + "eval/probes.py",
        """        _lbfgs(head, x, train[1], loss_of, l2, max_iter)
        val_score = score(_apply(head, val[0]), val[1])""",
        """        _lbfgs(head, x, train[1], loss_of, l2, max_iter)
        val_score = score(_apply(head, x), train[1])""",
        (T + "test_wrong_results.py",),
        "the linear probe's L2 strength is chosen on the training split",
    ),
    Mutant(
        "probe-split-in-index-order",
        M + "eval/evaluate.py",
        "rows = stratified_split(strata, (a, b - a, n - b), seed)",
        "rows = [torch.arange(0, a), torch.arange(a, b), torch.arange(b, n)]",
        (T + "test_splits.py",),
        "probe splits dealt in index order: a class-sorted folder's classes land in one split",
    ),
    Mutant(
        "run-folder-reused",
        M + "checkpoint.py",
        "    if resume or not held:",
        "    if True:",
        (T + "test_run_folders.py",),
        "a new run writes into a folder that holds an earlier run",
    ),
    Mutant(
        "probe-miou-union",
        M + "eval/probes.py",
        "union = conf.sum(0) + conf.sum(1) - tp",
        "union = conf.sum(0) + conf.sum(1)",
        (T + "test_eval.py",),
        "IoU counts the intersection twice in the union",
    ),
    Mutant(
        "probe-knn-weights",
        M + "eval/probes.py",
        "        w = (sim / temperature).exp()",
        "        w = torch.ones_like(sim)",
        (T + "test_eval.py",),
        "kNN votes unweighted",
    ),
    Mutant(
        "probe-standardise-per-split",
        M + "eval/probes.py",
        "return (split[0].float() - mean) / std, split[1]",
        "return (split[0].float() - split[0].float().mean(0)) / std, split[1]",
        (T + "test_eval.py",),
        "each probe split centred with its own mean (test statistics leak in)",
    ),
    Mutant(
        "monitor-rankme",
        M + "eval/monitors.py",
        "return float(torch.exp(-(p * p.log()).sum()))",
        "return float(-(p * p.log()).sum())",
        (T + "test_monitors.py",),
        "effective rank without the exp",
    ),
    Mutant(
        "monitor-std",
        M + "eval/monitors.py",
        "return float(F.normalize(_flat(z), dim=-1).std(dim=0, unbiased=False).mean())",
        "return float(_flat(z).std(dim=0, unbiased=False).mean())",
        (T + "test_monitors.py",),
        "embedding std of unnormalised embeddings",
    ),
    # ---------------------------------------------------------------- configs
    Mutant(
        "config-bool-one",
        M + "config.py",
        'return value.lower() in ("true", "1", "yes")',
        'return value.lower() in ("true", "yes")',
        (T + "test_config.py",),
        'the command-line "1" is not true',
    ),
    Mutant(
        "config-conflict-silent",
        M + "config.py",
        "                elif source is not None and value != source:",
        "                elif False:",
        (T + "test_config.py",),
        "explicit conflicts accepted silently",
    ),
    Mutant(
        "config-stale-wiring",
        M + "config.py",
        '        for path in self.followed:\n            part, _, name = path.partition(".")',
        '        for path in ():\n            part, _, name = path.partition(".")',
        (T + "test_config.py",),
        "an override of a source leaves its followers stale",
    ),
    Mutant(
        "config-range-unchecked",
        M + "config.py",
        "            if valid is not None and value is not None and not valid(value):",
        "            if False:",
        (T + "test_config.py",),
        "declared ranges not enforced",
    ),
    # ---------------------------------------------------------------- reliability: size guard, stops, disks
    Mutant(
        "size-no-activations",
        M + "sizing.py",
        "        acts = sum(self.activations.values()) if training else 0.0",
        "        acts = 0.0",
        (T + "test_sizing.py",),
        "the memory estimate leaves out a step's activations",
    ),
    Mutant(
        "stop-no-checkpoint",
        M + "train/trainer.py",
        "if done % cfg.checkpoint_every == 0 or done in (steps, stop) or halt:",
        "if done % cfg.checkpoint_every == 0 or done in (steps, stop):",
        (T + "test_preemption.py",),
        "a stopped run leaves no checkpoint of its last step",
    ),
    Mutant(
        "save-error-swallowed",
        M + "checkpoint.py",
        "            save_checkpoint(state, path)\n        except OSError as e:",
        "            save_checkpoint(state, path)\n        except ValueError as e:",
        (T + "test_preemption.py",),
        "a failed save is not reported with the last good checkpoint",
    ),
    Mutant(
        "run-folder-unchecked",
        M + "train/trainer.py",
        "            check_run_folder(out, int(FLOAT * (3 * sum(size.params.values()) + sum(size.fixed.values()))))",
        "            pass",
        (T + "test_preemption.py",),
        "an unwritable run folder is found at the first save",
    ),
    Mutant(
        "config-followed-lost",
        M + "config.py",
        '    if followed:\n        object.__setattr__(cfg, "_followed", frozenset(followed))',
        "    if False:\n        pass",
        (T + "test_config.py", T + "test_versions.py"),
        "a config read back from a dict stops following",
    ),
    # ---------------------------------------------------------------- contrastive losses
    Mutant(
        "clip-local-batch",
        M + "losses/contrastive.py",
        "        rank, world = _world()",
        "        rank, world = 0, 1",
        (T + "test_distributed.py", T + "test_contrastive.py"),
        "under torchrun each rank contrasts its own pairs only, not the global batch",
    ),
    Mutant(
        "siglip-bias-sign",
        M + "losses/contrastive.py",
        "return impl(image, text, self.logit_scale.exp(), self.logit_bias)",
        "return impl(image, text, self.logit_scale.exp(), -self.logit_bias)",
        (T + "test_contrastive.py",),
        "SigLIP's logit bias enters with the wrong sign",
    ),
    Mutant(
        "text-pool-padding",
        M + "methods/contrastive.py",
        "else features.mean()",
        "else features.tokens.mean(2)",
        (T + "test_contrastive.py",),
        "the text tower's pooling averages pad tokens too",
    ),
    # ---------------------------------------------------------------- pixel targets (MAE)
    Mutant(
        "pixels-channel-order",
        M + "targets/pixels.py",
        '"b c (h p) (w q) -> b (h w) (p q c)"',
        '"b c (h p) (w q) -> b (h w) (c p q)"',
        (T + "test_mae.py",),
        "a patch's values are flattened channels first, not as MAE's patchify",
    ),
    Mutant(
        "pixels-biased-variance",
        M + "targets/pixels.py",
        "(x.var(-1, keepdim=True) + self.eps).sqrt()",
        "(x.var(-1, keepdim=True, unbiased=False) + self.eps).sqrt()",
        (T + "test_mae.py",),
        "norm_pix divides by the biased variance (MAE uses the unbiased one)",
    ),
    Mutant(
        "pixels-evaluates-nothing",
        M + "methods/jepa.py",
        "        if self.target_encoder is not None and self.config.teacher_evaluated():",
        "        if self.target_encoder is not None:",
        (T + "test_mae.py", T + "test_salt.py"),
        "an MAE run probes and exports its pixel cutter, a SALT student run its frozen teacher",
    ),
    # ---------------------------------------------------------------- C-JEPA's VICReg terms
    Mutant(
        "vicreg-local-batch",
        M + "losses/embedding.py",
        "        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:",
        "        if False:",
        (T + "test_cjepa.py",),
        "under torchrun each rank takes the variance and covariance of its own share, not the global batch",
    ),
    Mutant(
        "sigreg-directions-per-rank",
        M + "losses/embedding.py",
        "g = torch.Generator().manual_seed(mix_seed(self.config.seed, step))",
        "g = torch.Generator().manual_seed(mix_seed(self.config.seed, step + (dist.get_rank() if dist.is_initialized() else 0)))",
        (T + "test_sigreg.py",),
        "each rank projects on its own directions: the ranks' statistics differ",
    ),
    Mutant(
        "sigreg-half-integral",
        M + "losses/embedding.py",
        "weights = torch.full_like(t, 2 * dt)",
        "weights = torch.full_like(t, dt)",
        (T + "test_sigreg.py",),
        "the trapezoid weights miss the negative half of the even integrand inside the range",
    ),
    Mutant(
        "vicreg-pool-padding",
        M + "methods/jepa.py",
        "parts.update(self.embedding_loss(pooled_context(z, masks.context_valid), step))",
        "parts.update(self.embedding_loss(z.mean(1), step))",
        (T + "test_cjepa.py",),
        "C-JEPA's pooled context averages the padding tokens too",
    ),
    # ---------------------------------------------------------------- issues 19, 20: the JEPA family
    Mutant(
        "lejepa-centre-all-views",
        M + "methods/lejepa.py",
        "prediction = (z - z[:vg].mean(0)).square().mean()",
        "prediction = (z - z.mean(0)).square().mean()",
        (T + "test_lejepa.py",),
        "the centre averages every view, not the global ones",
    ),
    Mutant(
        "lejepa-stop-gradient",
        M + "methods/lejepa.py",
        "prediction = (z - z[:vg].mean(0)).square().mean()",
        "prediction = (z - z[:vg].mean(0).detach()).square().mean()",
        (T + "test_lejepa.py",),
        "a stop-gradient on the centre (LeJEPA has none)",
    ),
    Mutant(
        "data2vec-norm-after-average",
        M + "methods/jepa.py",
        "h = torch.stack([normalise_block(x, cfg.target_block_norm) for x in blocks]).mean(0)",
        "h = normalise_block(torch.stack(blocks).mean(0), cfg.target_block_norm)",
        (T + "test_data2vec.py",),
        "the blocks averaged before their norm (a peer's data2vec)",
    ),
    Mutant(
        "inverse-block-edge-bias",
        M + "masks/inverse_block.py",
        "top = int(torch.randint(1 - b, h, (), generator=generator))",
        "top = int(torch.randint(0, h - b + 1, (), generator=generator))",
        (T + "test_data2vec.py",),
        "blocks start inside the grid: the edge rows are seen less often",
    ),
    Mutant(
        "salt-first-teacher-checkpoint",
        M + "train/trainer.py",
        "return found[-1][1] if found and found[-1][0] >= steps else None",
        "return found[0][1] if found and found[-1][0] >= steps else None",
        (T + "test_salt.py",),
        "the student reads an early teacher checkpoint, not the final one",
    ),
    Mutant(
        "frozen-prefix-kept",
        M + "targets/frozen.py",
        "state = {k[len(cfg.prefix) :]: v for k, v in state.items() if k.startswith(cfg.prefix)}",
        "state = {k: v for k, v in state.items() if k.startswith(cfg.prefix)}",
        (T + "test_salt.py",),
        "a training checkpoint's prefix is not stripped",
    ),
    # ---------------------------------------------------------------- video
    Mutant(
        "frame-only-sees-order",
        M + "eval/features.py",
        """return rearrange(self.patches, "n (t k) d -> n t k d", t=self.grid[0]).float().mean(1).to(self.patches.dtype)""",
        """return rearrange(self.patches, "n (t k) d -> n k (t d)", t=self.grid[0])[..., : self.patches.shape[-1]]""",
        (T + "test_video_probes.py",),
        "the frame-only baseline's attentive probe reads the first frame, not the time average",
    ),
    Mutant(
        "dense-frame-wrong-slot",
        M + "eval/features.py",
        ".repeat_interleave(frames // slots, dim=1)",
        ".repeat(1, frames // slots, 1, 1)",
        (T + "test_video_probes.py",),
        "a frame is segmented from another tubelet's tokens",
    ),
    Mutant(
        "tubelet-pixels-frame-order",
        M + "targets/pixels.py",
        '''"b c (t u) (h p) (w q) -> b (t h w) (u p q c)"''',
        '''"b c (u t) (h p) (w q) -> b (t h w) (u p q c)"''',
        (T + "test_mae.py",),
        "a tubelet's pixel target takes frames from other tubelets",
    ),
    Mutant(
        "clip-stretch-ignored",
        M + "data/video.py",
        "low, high = c * starts // k, max(c * starts // k + 1, (c + 1) * starts // k)",
        "low, high = 0, starts",
        (T + "test_video_files.py",),
        "every clip of a video starts anywhere, not in its own stretch",
    ),
]


def apply(m: Mutant) -> str:
    """Apply ``m``; return the original text of the file."""
    path = ROOT / m.file
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        raise SystemExit(f"mutant {m.id}: the line to change occurs {count} times in {m.file}")
    mutated = text.replace(m.old, m.new)
    compile(mutated, m.file, "exec")
    path.write_text(mutated)
    return text


def run_tests(tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    """("passed", "failed" or "timed out", seconds). A time-out is no kill: on a busy machine the tests
    may only be slow, so it is reported apart (a hang a mutant causes shows as one too)."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "HYPOTHESIS_PROFILE": "ci"},
        )
        outcome = "passed" if done.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        outcome = "timed out"
    return outcome, time.perf_counter() - t0


TITLE = "Mutation audit of the correctness-critical lines"
HEADER = ("mutant", "the slip", "file", "tests run", "result", "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="mutant ids")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    ids = [m.id for m in MUTANTS]
    assert len(set(ids)) == len(ids), "mutant ids must be unique"
    for m in chosen:  # every mutant applies cleanly before any runs
        (ROOT / m.file).write_text(apply(m))
    baseline = sorted({t for m in chosen for t in m.tests})
    outcome, secs = run_tests(tuple(baseline), args.timeout * 3)
    if outcome == "timed out":
        raise SystemExit(
            f"the unmutated tests took over {args.timeout * 3:.0f} s ({' '.join(baseline)}): raise --timeout"
        )
    if outcome == "failed":
        raise SystemExit(f"the unmutated tests fail ({' '.join(baseline)}): fix them first")
    print(f"baseline: {len(baseline)} test files pass ({secs:.0f} s)", flush=True)
    rows: list[tuple[str, ...]] = []
    not_killed: list[tuple[Mutant, str]] = []
    for m in chosen:
        original = apply(m)
        try:
            outcome, secs = run_tests(m.tests, args.timeout)
        finally:
            (ROOT / m.file).write_text(original)
        status = {"passed": "SURVIVED", "failed": "killed", "timed out": "timed out"}[outcome]
        if outcome != "failed":
            not_killed.append((m, status))
        rows.append(
            (
                m.id,
                m.what,
                m.file.removeprefix("jepakit/"),
                " ".join(t.removeprefix("tests/") for t in m.tests),
                status,
                f"{secs:.0f}",
            )
        )
        print(f"{status:8s} {m.id:26s} {m.what} ({secs:.0f} s)", flush=True)
    killed = len(chosen) - len(not_killed)
    summary = f"{killed} of {len(chosen)} mutants killed ({killed / len(chosen):.0%})"
    print(summary)
    for m, status in not_killed:
        print(f"  {status.lower()}: {m.id}: {m.what}")
    if args.record:
        rows = merged(rows)
        dead = sum(row[4] == "killed" for row in rows)
        note = (
            "`python benchmarks/mutation.py --record`: each mutant applied alone, the tests named run "
            f"(`pytest -x`, derandomised hypothesis), the file restored. {dead} of {len(rows)} mutants killed "
            f"({dead / len(rows):.0%})."
        )
        if args.only:
            note += f" This record ran {len(chosen)} of them ({summary}); the other rows are kept from earlier records."
        record(TITLE, note + "\n\n" + table(HEADER, rows) + _reading())


def _recorded() -> dict[str, tuple[str, ...]]:
    """The rows of the table in RESULTS.md, by mutant id."""
    lines = section_lines(TITLE)
    cells = [tuple(c.strip() for c in line.strip().strip("|").split("|")) for line in lines if line.startswith("| ")]
    return {row[0]: row for row in cells[1:] if len(row) == len(HEADER)}


def merged(rows: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """This run's rows, and the recorded rows of the mutants it did not run, in the list's order (a mutant
    no record has run yet is left out)."""
    by_id = _recorded() | {row[0]: row for row in rows}
    return [by_id[m.id] for m in MUTANTS if m.id in by_id]


def _reading() -> str:
    """The hand-written reading below the table, kept when the table is recorded again."""
    notes = section_notes(TITLE)
    return "\n\n" + notes if notes else ""


if __name__ == "__main__":
    main()
