"""The experiment: a method, its data and its training, as one config tree.

``Experiment(method, data, train)`` is what a recipe returns, what ``config.json`` and
checkpoints store, and what ``build``/``get_config`` take. The method holds only its own
slots; the data follows the method's image size. Overrides and attribute reads may name
a method field from the root (``predictor.depth=6`` means ``method.predictor.depth=6``;
``cfg.predictor`` is ``cfg.method.predictor``).

Stored dicts carry a schema version. Version 1 (before methods were a kind) had a
``model/jepa`` root holding ``data`` and ``train``; it is upgraded when read. Version 3 made a
JEPA method's ``caption_choice`` default ``"sample"`` (the TC-JEPA recipes' choice) and the multi-block
maskers' ``shape_draw`` default ``"coupled"`` (the official collator's) and a video encoder's
``video_positions`` default ``"thirds"`` (V-JEPA's released layout), and AdaLN's ``final_norm`` default
true (the paper's every LayerNorm); a version 1 or 2 dict without the fields chose ``"first"``,
``"independent"``, ``"quarters"`` and false, and reads so.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .config import Assembly, Config, ConfigError, coerce, slot, unknown
from .data.base import DatasetConfig
from .data.scenes import SceneConfig
from .methods.base import MethodConfig
from .methods.jepa import JEPAConfig
from .registry import list_components, register_legacy, register_root
from .sizing import check_fits
from .targets.frozen import FrozenConfig
from .train.loggers import LoggerConfig
from .train.trainer import TrainConfig

__all__ = ["SCHEMA_VERSION", "Experiment"]

#: The layout of stored experiment dicts (``config.json``, checkpoints).
SCHEMA_VERSION = 4  # 4: train.collapse_drop (a fall of the centred rank) replaces train.collapse_rank

_PARTS = ("method", "data", "train", "teacher_run")
#: Maskers whose block shapes schema 2 drew with scale and aspect apart (schema 3's default couples them).
_INDEPENDENT_DRAWS = ("masker/multiblock", "masker/multiblock-paper-context")
#: Encoder fields that do not change its weights' shapes (a teacher trained with other values still fits).
_TRAINING_ONLY = ("drop_path_rate", "init", "init_std", "depth_rescale")


@register_root
@dataclass(frozen=True)
class Experiment(Assembly):
    kind: ClassVar[str] = "experiment"
    schema_version: ClassVar[int] = SCHEMA_VERSION

    method: MethodConfig = slot(JEPAConfig(), "method", "the SSL method: its parts and their settings")
    data: Config = slot(SceneConfig(), "dataset", "training data (default: the embedded captioned scenes)")
    train: TrainConfig = slot(TrainConfig(), "trainer", "optimisation, schedules, logging and checkpoints")
    teacher_run: Experiment | None = slot(
        None,
        "experiment",
        "a first stage trained before this one, into OUT/teacher; its final encoder becomes this method's "
        "frozen teacher (SALT); None: one stage",
    )

    @classmethod
    def type_id(cls) -> str:
        return "experiment"

    def provides(self) -> dict[str, tuple[Any, str]]:
        return self.method.provides()

    def check(self) -> None:
        if self.teacher_run is not None:
            self._check_teacher_run(self.teacher_run)
        least = self.method.min_batch_size()
        if self.train.batch_size < least:
            raise ConfigError(
                f"train.batch_size={self.train.batch_size}: method {self.method.name!r} needs at least {least} "
                "samples per step (a contrastive loss has no negative in a batch of one)"
            )
        data = self.data if isinstance(self.data, DatasetConfig) else None  # a user's config may not derive it
        clips = data is not None and data.clips
        if clips != self.method.takes_clips():
            wants = "clips (num_frames is set)" if self.method.takes_clips() else "images"
            gives = "clips" if clips else "images"
            raise ConfigError(
                f"method {self.method.name!r} trains on {wants}, and data {self.data.name!r} gives {gives}; "
                + (
                    "choose video data (data=moving-scenes)"
                    if self.method.takes_clips()
                    else "unset data's frames or choose image data"
                )
            )
        missing = data.captions_missing() if data is not None else None
        if self.method.needs_captions() and missing:
            raise ConfigError(
                f"method {self.method.name!r} pairs images with captions, and data {self.data.name!r} has none: {missing}"
            )

    def _check_teacher_run(self, first: Experiment) -> None:
        """A first stage needs a frozen teacher to feed, of the architecture its evaluated encoder has."""
        updater = self.method.parts().get("target_updater")
        if not isinstance(updater, FrozenConfig):
            found = "none" if updater is None else repr(updater.name)
            raise ConfigError(
                f"teacher_run is set, so the method needs target_updater=frozen to read its encoder; it has {found}"
            )
        if updater.timm is not None:
            raise ConfigError(f"teacher_run is set, so target_updater.timm={updater.timm!r} has no weights to read")
        from .config import config_diff

        teacher, _ = first.method.eval_encoder()
        encoder = self.method.parts().get("encoder", teacher)
        diff = [d for d in config_diff(teacher, encoder) if d not in _TRAINING_ONLY]
        if diff:
            raise ConfigError(
                f"teacher_run's evaluated encoder differs from this method's encoder in {', '.join(diff)}: "
                "the teacher's weights would not fit"
            )

    def teacher_weights(self, checkpoint: str) -> Experiment:
        """This stage with its frozen teacher read from the first stage's training ``checkpoint``."""
        from .config import apply_overrides

        assert self.teacher_run is not None
        prefix = self.teacher_run.method.eval_encoder()[1][0]
        where = {"checkpoint": checkpoint, "key": "model", "prefix": f"{prefix}."}
        return apply_overrides(self, {"method": {"target_updater": where}})

    def __getattr__(self, name: str) -> Any:
        """Read a method field from the root, as overrides name it: ``cfg.predictor`` is ``cfg.method.predictor``."""
        method = self.__dict__.get("method")
        if name.startswith("_") or method is None or name not in {f.name for f in dataclasses.fields(method)}:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        return getattr(method, name)

    def route(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Keys that are not ``method``, ``data`` or ``train`` are the method's fields, or a logger's name
        (``wandb.project=NAME``: the fields of that logger in ``train.loggers``)."""
        routed: dict[str, Any] = {}
        forwarded: dict[str, Any] = {}
        logged: dict[str, Any] = {}
        names = {f.name for f in dataclasses.fields(self.method)}
        loggers = list_components("logger")["logger"]
        for key, value in overrides.items():
            if key in _PARTS:
                routed[key] = value
            elif key in names:
                forwarded[key] = value
            elif key in loggers and isinstance(value, Mapping):
                logged[key] = value
            else:
                raise unknown("field", key, [*_PARTS, *names, *(f"{n}.FIELD" for n in loggers)])
        if logged:
            routed["train"] = self._logger_fields(routed.get("train", {}), logged)
        if forwarded:
            given = routed.get("method", {})
            if isinstance(given, Config):
                raise ConfigError(f"method is replaced by a config; set {sorted(forwarded)} on it instead")
            given = {"type": given} if isinstance(given, str) else dict(given)
            routed["method"] = {**given, **forwarded}
        return routed

    def _logger_fields(self, train: Any, fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """``train``'s overrides with ``fields`` (logger name -> its field values) set on the loggers it
        chooses (``train.loggers`` as overridden, else as configured)."""
        if isinstance(train, Config):
            raise ConfigError(f"train is replaced by a config; set the loggers' fields {sorted(fields)} on it")
        train = dict(train)
        where = "train.loggers"
        chosen = coerce(train.get("loggers", self.train.loggers), tuple[LoggerConfig, ...], where)
        for name, values in fields.items():
            if name not in [c.name for c in chosen]:
                raise ConfigError(
                    f"{name}.{', '.join(values)} is set, but {where}={[c.name for c in chosen]} does not choose "
                    f"{name}: add it to {where}"
                )
            chosen = tuple(c.replace(**values) if c.name == name else c for c in chosen)
        return train | {"loggers": chosen}

    def build(self) -> Any:
        """The method's module (a ready model); data and training are built by the trainer. Its
        parameters are checked to fit the host's memory first (``train.memory_check``)."""
        if self.train.memory_check != "off":
            check_fits(self.method.size(1), torch.device("cpu"), training=False, mode=self.train.memory_check)
        return self.method.build()

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A stored experiment dict in this version's layout (``version`` removed)."""
        data = dict(data)
        version = data.pop("version", SCHEMA_VERSION)
        data.pop("imports", None)  # a run's config.json also lists the user code it was made with
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"this experiment was written by a newer jepakit (schema {version}); "
                f"this one reads schema {SCHEMA_VERSION} and older"
            )
        method = data.get("method")
        if version < 3 and isinstance(method, dict) and method.get("type") == "method/jepa":
            data["method"] = {"caption_choice": "first", **method}  # the defaults when it was written
            masker = method.get("masker")
            if isinstance(masker, dict) and masker.get("type") in _INDEPENDENT_DRAWS:
                data["method"]["masker"] = {"shape_draw": "independent", **masker}
            encoder = method.get("encoder")
            if method.get("num_frames") is not None and isinstance(encoder, dict):
                data["method"]["encoder"] = {"video_positions": "quarters", **encoder}
            conditioner = method.get("conditioner")
            if isinstance(conditioner, dict) and conditioner.get("type") == "conditioner/adaln":
                data["method"]["conditioner"] = {"final_norm": False, **conditioner}
        train = data.get("train")
        if version < 4 and isinstance(train, dict) and "collapse_rank" in train:
            data["train"] = {k: v for k, v in train.items() if k != "collapse_rank"}  # a warning threshold only
        return data


def _upgrade_v1(old: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 (a ``model/jepa`` root with ``data`` and ``train`` inside) -> schema 2."""
    method = copy.deepcopy(dict(old))
    method["type"] = "method/jepa"
    data, train = method.pop("data"), dict(method.pop("train"))
    if "crop_scale" in train:  # augmentation is the method's business now
        method["crop_scale"] = train.pop("crop_scale")
    fit = train.pop("tokenizer_samples", None)
    tokenizer = method.get("tokenizer")
    if fit is not None and isinstance(tokenizer, dict) and tokenizer.get("type") == "tokenizer/sentencepiece":
        tokenizer["fit_samples"] = fit
    if train.get("type") == "trainer/jepa":
        train["type"] = "trainer/default"
    ema = method.get("target_updater")
    if (
        isinstance(ema, dict)
        and ema.get("type") == "target_updater/ema"
        and ema.get("total_steps") == train.get("steps")
    ):
        ema["total_steps"] = None  # schema 1 copied the run length in; schema 2 reads it from the run
    return {"type": "experiment", "version": 2, "method": method, "data": data, "train": train}


register_legacy("model/jepa", _upgrade_v1)
