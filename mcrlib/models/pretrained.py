"""Pretrained Hugging Face backbones of the pretrained-encoder ("Conformer") family (paper A.3).

`load_backbone(kind, checkpoint=... | random_config=...)` builds one of the release's backbones,
`transformers`' bare models (no task head):

- "wav2vec2": `Wav2Vec2Model` (CREMA-D audio; the release: `facebook/wav2vec2-large-robust`),
- "hubert": `HubertModel` (AVE audio; the release: `ALM/hubert-base-audioset`),
- "vivit": `VivitModel` (AVE video; the release: `google/vivit-b-16x2-kinetics400`).

Exactly one of `checkpoint` and `random_config` is given. `checkpoint` is a hub id or a local
folder holding the files of one (`config.json` and the weights), loaded with
`Model.from_pretrained`; a hub id needs network access or an already-populated Hugging Face cache
(`HF_HUB_OFFLINE=1` uses the cache without trying the network). A checkpoint that cannot be
loaded is a `WeightsError` saying so. `random_config` is the keyword arguments of the model's
config class and gives a randomly initialised model (the tests' tiny models, or a run without
pretraining).

`transformers` is imported inside the functions, not at module level: importing it takes
seconds, and every run imports the model modules.
"""
from __future__ import annotations

from pathlib import Path

from mcrlib.errors import WeightsError

# kind -> (model class, config class), both in the `transformers` namespace.
BACKBONES = {"wav2vec2": ("Wav2Vec2Model", "Wav2Vec2Config"),
             "hubert": ("HubertModel", "HubertConfig"),
             "vivit": ("VivitModel", "VivitConfig")}


def load_backbone(kind: str, *, checkpoint: str | None = None, random_config: dict | None = None):
    """The `transformers` model of `kind`: pretrained from `checkpoint` (a hub id or a local folder)
    or randomly initialised from `Config(**random_config)`."""
    if kind not in BACKBONES:
        raise ValueError(f"unknown backbone {kind!r}; expected one of {sorted(BACKBONES)}")
    if (checkpoint is None) == (random_config is None):
        raise ValueError(f"backbone {kind!r}: give exactly one of checkpoint (a hub id or a local folder "
                         f"with the downloaded files) and random_config (the keyword arguments of "
                         f"{BACKBONES[kind][1]} for a randomly initialised model), got "
                         f"{'both' if checkpoint is not None else 'neither'}")
    import transformers
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    model_name, config_name = BACKBONES[kind]
    model_cls = getattr(transformers, model_name)
    if random_config is not None:
        return model_cls(getattr(transformers, config_name)(**random_config))
    try:
        return model_cls.from_pretrained(str(checkpoint))
    except (OSError, HFValidationError, HfHubHTTPError) as err:
        raise WeightsError(_weights_message(str(checkpoint), err)) from err


def _weights_message(checkpoint: str, err: BaseException) -> str:
    path = Path(checkpoint).expanduser()
    local = path.is_absolute() or checkpoint.startswith((".", "~")) or checkpoint.count("/") > 1
    reason = f"there is no folder {str(path)!r}" if local and not path.exists() else str(err)
    hub_id = "<hub id>" if local else checkpoint
    return (f"cannot load the pretrained weights {checkpoint!r}: {reason}\n"
            f"Without network access, give instead a local folder holding the checkpoint's downloaded files "
            f"(config.json and the weights, model.safetensors or pytorch_model.bin), e.g. made on a machine "
            f"with internet by `hf download {hub_id} --local-dir <folder>` (older huggingface_hub: "
            f"`huggingface-cli download {hub_id} --local-dir <folder>`) and copied here; or, when the "
            f"Hugging Face cache already holds it, set HF_HUB_OFFLINE=1 to use the cache without "
            f"trying the network.")
