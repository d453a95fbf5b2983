"""Typed, validated configuration.

Every config is a frozen dataclass built from a plain mapping (a params.yaml section) by
`from_dict`, which rejects unknown keys, wrong types and invalid values *before* any training,
with a message naming the key path, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping


class ConfigError(ValueError):
    """A configuration key or value that cannot be used."""


def check(condition: bool, path: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{path}={value!r} is invalid: expected {allowed}")


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        check(value in args, path, value, f"one of {list(args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:   # X | None: X's own error, with its own key path
            return _coerce(inner[0], value, path)
        errors = []
        for option in inner:   # the first type the value fits
            try:
                return _coerce(option, value, path)
            except ConfigError as err:
                errors.append(str(err).split(": expected ", 1)[-1])
        raise ConfigError(f"{path}={value!r} is invalid: expected " + " or ".join(errors))
    if origin in (tuple, list) or hint in (tuple, list):
        check(isinstance(value, (list, tuple)), path, value, "a list")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        check(isinstance(value, Mapping), path, value, "a mapping")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)
    if hint is bool:
        check(isinstance(value, bool), path, value, "true or false")
        return value
    if hint is int:
        check(isinstance(value, int) and not isinstance(value, bool), path, value, "an integer")
        return value
    if hint is float:
        # YAML reads 1e-3 as a string; accept any real number written as number or string.
        try:
            ok = not isinstance(value, bool) and float(value) == float(value)
        except (TypeError, ValueError):
            ok = False
        check(ok, path, value, "a real number")
        return float(value)
    if hint is str:
        check(isinstance(value, str), path, value, "a string")
        return value
    return value


def from_dict(cls: type, mapping: Mapping[str, Any] | None, path: str = ""):
    """Build dataclass `cls` from `mapping`, validating every key and value."""
    mapping = {} if mapping is None else mapping
    if dataclasses.is_dataclass(mapping):
        mapping = dataclasses.asdict(mapping)
    where = path or cls.__name__
    check(isinstance(mapping, Mapping), where, mapping, "a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown key {'.'.join(filter(None, [path, unknown[0]]))!r}; "
            f"allowed keys of {where}: {names}")
    kwargs = {k: _coerce(hints[k], v, f"{path}.{k}" if path else k) for k, v in mapping.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required key is missing
        raise ConfigError(f"{where}: {err}") from None


def to_dict(config) -> dict:
    """Plain, JSON-ready dict of a config (tuples become lists)."""
    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(config))


# model.encoders kinds (mcrlib.models.build_encoder) and the sample rank each one reads.
ENCODER_KINDS = {"speech_conformer": 1, "video_conformer": 4, "conformer": 2}


@dataclass(frozen=True)
class ModelConfig:
    """Encoders by each modality's declared family (vectors: MLP; spectrograms and images:
    ResNet-18; frame stacks: ResNet-18 over frames), a fusion head, one linear head each."""
    hidden_dim: int = 128      # MLP
    latent_dim: int = 64       # MLP
    layers: int = 2            # MLP hidden layers
    dropout: float = 0.0       # MLP
    resnet_width: int = 64     # ResNet-18 base width; 64 is torchvision's ResNet-18
    # Frame stacks: ResNet-18 over the frames (CREMA-D, AVE, UCF) or Video Swin-T (Sth-Sth).
    video_encoder: Literal["resnet18", "swin3d_t"] = "resnet18"
    # The fusion head by name, and its own params: a plug-in of mcrlib.models.FUSION_HEADS (late
    # linear, MMCosine's cosine logits, ARM's re-fusion, ReconBoost's sum of the unimodal heads),
    # validated with the run by mcrlib.run_key.check_run, as method.params are (this module
    # imports no other part of mcrlib). A method that needs another head sets both
    # (Method.model_overrides), so the run's config names the head and a saved model rebuilds
    # from the config alone.
    fusion: str = "linear"
    fusion_params: dict = field(default_factory=dict)
    # Per-modality encoder overrides: modality -> {kind: one of ENCODER_KINDS, ...its keyword
    # arguments}. The pretrained-encoder ("Conformer") family of paper A.3 (mcrlib.models.
    # build_encoder): speech_conformer (Wav2Vec2 / HuBERT + Conformer, raw waveforms),
    # video_conformer (ViViT + Conformer, frames), conformer (a Conformer over a feature sequence,
    # e.g. face features). Modalities not named here take their family's default encoder.
    encoders: dict = field(default_factory=dict)

    def __post_init__(self):
        check(self.hidden_dim >= 1, "model.hidden_dim", self.hidden_dim, "an integer >= 1")
        check(self.latent_dim >= 1, "model.latent_dim", self.latent_dim, "an integer >= 1")
        check(self.layers >= 1, "model.layers", self.layers, "an integer >= 1")
        check(0 <= self.dropout < 1, "model.dropout", self.dropout, "a number in [0, 1)")
        check(self.resnet_width >= 1, "model.resnet_width", self.resnet_width, "an integer >= 1")
        for modality, spec in self.encoders.items():
            check(isinstance(spec, Mapping) and spec.get("kind") in ENCODER_KINDS, f"model.encoders.{modality}",
                  spec, f"{{kind: one of {list(ENCODER_KINDS)}, ...that encoder's arguments}}")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 50
    warmup_epochs: float = 1.0   # linear warm-up, then cosine decay to 0 over max_epochs
    patience: int = 10           # epochs without validation improvement before stopping
    device: str = "auto"         # auto | cpu | cuda | cuda:N
    progress: bool = True
    augment_frames: bool = False  # RandomResizedCrop + flip of video frames in training (paper A.2)
    # Evaluate the test split after every epoch (per-epoch curves, Figure 6), not only at the end;
    # selection and early stopping read the validation split either way.
    test_every_epoch: bool = False
    # bf16: the forward pass and the losses under torch.autocast (weights, optimizer and
    # evaluation stay fp32); meant for GPUs with bf16 units.
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self):
        check(self.lr > 0, "train.lr", self.lr, "a learning rate > 0")
        check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number >= 0")
        check(self.batch_size >= 2, "train.batch_size", self.batch_size,
              "an integer >= 2 (permutations need at least two samples)")
        check(self.max_epochs >= 1, "train.max_epochs", self.max_epochs, "an integer >= 1")
        check(self.warmup_epochs >= 0, "train.warmup_epochs", self.warmup_epochs, "a number >= 0")
        if self.warmup_epochs >= self.max_epochs:   # say both keys: the user may have set only one
            default = " (its default)" if self.warmup_epochs == TrainConfig.warmup_epochs else ""
            raise ConfigError(f"train.max_epochs={self.max_epochs} is invalid with train.warmup_epochs="
                              f"{self.warmup_epochs}{default}: the linear warm-up must end before the last "
                              f"epoch; raise max_epochs above {self.warmup_epochs:g} or set train.warmup_epochs "
                              f"below {self.max_epochs} (0: no warm-up)")
        check(self.patience >= 1, "train.patience", self.patience, "an integer >= 1")
        check(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
              "train.device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'")


@dataclass(frozen=True)
class MethodConfig:
    """A method's name and its own parameters: resolved and validated against the method
    registry by mcrlib.run_key.check_run (this module imports no other part of mcrlib)."""
    name: str = "joint"
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """A dataset's name and its load params: resolved and validated against the dataset
    registry by mcrlib.run_key.check_run."""
    name: str = "synthetic"
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run (and its cache key)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    seed: int = 0
    # Save every encoder's features of this many training samples (and of the whole test split)
    # after every epoch, for linear probes (competition analysis); 0: none.
    record_features: int = 0

    def __post_init__(self):
        check(self.record_features >= 0, "record_features", self.record_features, "an integer >= 0")
