"""AV-Digits: a small real audio-visual benchmark that runs anywhere.

Audio: Free Spoken Digit Dataset recordings (real speech, 6 speakers), split by SPEAKER so the
test speakers are unseen (as CREMA-D splits by actor); waveform -> STFT log-magnitude (the
CREMA-D route), computed once here and cached. Images: the UCI handwritten digits shipped with
scikit-learn (8x8). Each recording is paired with an image of the same digit drawn, with a fixed
seed, from that split's own pool of images (the image pools are disjoint across splits).
Degradation recipe, fixed before any multimodal run (the AV-MNIST recipe of MultiBench): images
keep only the top principal components holding `image_energy` of the variance (fitted on the
training pool); audio gets white noise at `audio_snr_db`.

    python -m mcrlib.data.prepare avdigits      # the DVC stage prepare@avdigits
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from mcrlib.atomic import save_torch, write_text
from mcrlib.config import check
from mcrlib.data import fsdd
from mcrlib.data.location import project_path
from mcrlib.data.tensors import TensorSplits

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class AVDigitsConfig:
    fsdd_root: str = ""                      # FSDD folder; empty: $MCR_FSDD_ROOT, else download
    val_speakers: tuple[str, ...] = ("theo",)
    test_speakers: tuple[str, ...] = ("yweweler",)
    duration_s: float = 1.0                  # recordings padded / truncated to this length
    n_fft: int = 126                         # STFT window (64 frequency bins)
    hop_length: int = 250                    # STFT hop (33 frames for 1 s at 8 kHz)
    audio_snr_db: float = 30.0               # white noise added at this signal-to-noise ratio
    image_energy: float = 0.3                # share of PCA variance kept in the images
    seed: int = 0                            # noise, image pools and pairing
    checksums: str = ""                      # SHA-256 list; empty: the list pinned in mcrlib

    def __post_init__(self):
        check(not set(self.val_speakers) & set(self.test_speakers), "data.val_speakers",
              list(self.val_speakers), "speakers not also in data.test_speakers")
        check(self.duration_s > 0, "data.duration_s", self.duration_s, "a duration > 0")
        check(0 < self.image_energy <= 1, "data.image_energy", self.image_energy, "a share in (0, 1]")
        check(self.n_fft >= 2 and self.hop_length >= 1, "data.n_fft/hop_length",
              (self.n_fft, self.hop_length), "n_fft >= 2 and hop_length >= 1")


def _speaker_split(speaker: str, cfg: AVDigitsConfig) -> str:
    return "test" if speaker in cfg.test_speakers else "val" if speaker in cfg.val_speakers else "train"


def _spectrograms(waves: np.ndarray, cfg: AVDigitsConfig, rng: np.random.Generator) -> torch.Tensor:
    power = (waves ** 2).mean(axis=1, keepdims=True)
    noise = rng.standard_normal(waves.shape).astype(np.float32) * np.sqrt(power / 10 ** (cfg.audio_snr_db / 10))
    stft = torchaudio.transforms.Spectrogram(n_fft=cfg.n_fft, hop_length=cfg.hop_length, power=1)
    return torch.log(stft(torch.from_numpy(waves + noise)) + 1e-7).unsqueeze(1)


def _image_pools(cfg: AVDigitsConfig, shares: dict[str, float]):
    """Per split: degraded 8x8 images and their digits; pools disjoint, stratified by digit."""
    digits = load_digits()
    images, labels = digits.images.reshape(len(digits.images), -1) / 16.0, digits.target
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=shares["test"], stratify=labels, random_state=cfg.seed)
    train, val = train_test_split(rest, test_size=shares["val"] / (1 - shares["test"]),
                                  stratify=labels[rest], random_state=cfg.seed)
    pca = PCA(random_state=cfg.seed).fit(images[train])
    keep = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), cfg.image_energy) + 1)
    pca = PCA(n_components=keep, random_state=cfg.seed).fit(images[train])
    degraded = pca.inverse_transform(pca.transform(images)).astype(np.float32)
    return {s: (degraded[i], labels[i], i) for s, i in zip(SPLITS, (train, val, test))}, keep


def build(cfg: AVDigitsConfig, out_dir: str | Path, download_to: Path | None = None) -> dict:
    """Verify FSDD, compute and cache the tensors of each split; returns the recipe record."""
    out_dir = Path(out_dir)
    root = fsdd.locate(cfg.fsdd_root, download_to)
    sums = fsdd.read_sums(Path(cfg.checksums) if cfg.checksums else fsdd.PINNED_SUMS)
    files = fsdd.verify(root, sums)
    meta = [fsdd.parse_name(f) for f in files]
    speakers = sorted({s for _, s, _ in meta})
    unknown = (set(cfg.val_speakers) | set(cfg.test_speakers)) - set(speakers)
    check(not unknown, "data.val_speakers/test_speakers", sorted(unknown), f"speakers among {speakers}")
    rng = np.random.default_rng(cfg.seed)
    samples = int(round(cfg.duration_s * 8000))
    waves = np.stack([fsdd.read_fixed(f, samples) for f in tqdm(files, desc="FSDD recordings")])
    audio = _spectrograms(waves, cfg, rng)
    split_of = np.array([_speaker_split(s, cfg) for _, s, _ in meta])
    # Standardise each frequency bin with training statistics (log magnitudes of silence sit near
    # log(1e-7) = -16; unscaled, the encoder spends its first epochs on the offset).
    train_audio = audio[torch.from_numpy(split_of == "train")]
    mean, std = train_audio.mean(dim=(0, 3), keepdim=True), train_audio.std(dim=(0, 3), keepdim=True)
    audio = (audio - mean[0]) / (std[0] + 1e-6)
    shares = {s: float((split_of == s).mean()) for s in SPLITS}
    pools, components = _image_pools(cfg, shares)
    record = {"recipe": asdict(cfg), "speakers": speakers, "image_pca_components": components, "splits": {}}
    digests = hashlib.sha256()
    for split in SPLITS:
        rows = np.flatnonzero(split_of == split)
        labels = np.array([meta[i][0] for i in rows])
        pool_images, pool_labels, pool_ids = pools[split]
        pick = np.array([rng.choice(np.flatnonzero(pool_labels == d)) for d in labels])
        tensors = {"audio": audio[rows].contiguous(),
                   "visual": torch.from_numpy(pool_images[pick]).view(-1, 1, 8, 8),
                   "label": torch.from_numpy(labels).long(),
                   "group": torch.tensor([speakers.index(meta[i][1]) for i in rows]),  # the speaker
                   "image_id": torch.from_numpy(pool_ids[pick])}   # row of sklearn's load_digits
        save_torch(tensors, out_dir / f"{split}.pt")
        for value in tensors.values():
            digests.update(value.numpy().tobytes())
        record["splits"][split] = {"samples": len(rows), "speakers": sorted({meta[i][1] for i in rows}),
                                   "image_pool": len(pool_labels)}
    record["fingerprint"] = digests.hexdigest()[:16]
    write_text(json.dumps(record, indent=1), out_dir / "recipe.json")
    return record


@dataclass(frozen=True)
class AVDigitsData:
    """What a run needs: the folder of cached tensors and their fingerprint (part of the run key)."""
    path: str = "data/processed/avdigits"
    fingerprint: str = ""


def load(params: AVDigitsData) -> TensorSplits:
    path = project_path(params.path)
    missing = [s for s in SPLITS if not (path / f"{s}.pt").exists()]
    if missing:
        raise FileNotFoundError(f"{path} lacks {', '.join(f'{s}.pt' for s in missing)}: build AV-Digits "
                                f"first with `dvc repro prepare@avdigits` (python -m mcrlib.data.prepare avdigits)")
    record = json.loads((path / "recipe.json").read_text())
    if params.fingerprint and record["fingerprint"] != params.fingerprint:
        raise ValueError(f"{path} holds AV-Digits {record['fingerprint']}, not {params.fingerprint}: rebuild it")
    splits = {s: torch.load(path / f"{s}.pt", weights_only=True) for s in SPLITS}
    return TensorSplits(splits, modalities=("audio", "visual"), n_classes=10,
                        group_names=tuple(record["speakers"]))
