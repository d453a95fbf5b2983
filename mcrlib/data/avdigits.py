"""AV-Digits: a small real audio-visual benchmark that runs anywhere, in leave-one-speaker-out folds.

Audio: the Free Spoken Digit Dataset's 3,000 real recordings (6 speakers x 10 digits x 50 takes).
Images: the UCI handwritten digits shipped with scikit-learn (8x8). The 1,797 images are split
into 6 disjoint pools stratified by digit, one per speaker, and each recording is paired, with a
fixed seed, with an image of the same digit from its speaker's pool: whichever speaker is held
out, its images were never seen in training.

Folds (`fold` k = 0..5): the k-th speaker (sorted by name) is the test set, the next one the
validation set, the other four train, the way the paper splits CREMA-D by actor. Every
recording is a test sample in exactly one fold.

Several images per test recording (`test_images` K > 1): each test recording is scored K times,
against its own pairing and K - 1 other images of the same digit from its speaker's pool (drawn
once, from the recipe's seed), so the test split holds K rows per recording, recording by
recording. A run's test accuracy is then the mean over the K pairings: which one image happened
to be paired with a recording no longer moves a unit's score (issue 23: the within-fold
run-to-run spread of paired differences was ~4 points at K = 1). Training and validation keep one
pairing per recording.

Degradation (load time, so that the calibration grid needs no new preprocessing; the AV-MNIST
recipe of MultiBench): white noise at `audio_snr_db` on the waveforms (drawn once for the whole
corpus from the recipe's seed, identical across folds and methods), then the STFT log-magnitude
standardised per frequency bin with the training speakers' statistics; images keep only the top
principal components holding `image_energy` of the variance, fitted on the training speakers'
image pools.

    python -m mcrlib.data.prepare avdigits      # the DVC stage prepare@avdigits
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold
from tqdm.auto import tqdm

from mcrlib.atomic import save_torch, write_text
from mcrlib.config import check
from mcrlib.data import fingerprint, fsdd
from mcrlib.data.spec import DatasetSpec, location
from mcrlib.data.tensors import TensorSplits

SPLITS = ("train", "val", "test")
N_SPEAKERS = 6
MAX_TEST_IMAGES = 20
AUDIO_FEATURES = ("stft", "mel")
N_MELS = 40
ROOT_ENV = "MCR_FSDD_ROOT"
DOWNLOAD_TO = Path("data/raw/fsdd")


@dataclass(frozen=True)
class PrepareConfig:
    """Preprocessing (the `prepare@avdigits` stage): what is read and cached, once."""
    root: str = ""                           # FSDD folder; empty: $MCR_FSDD_ROOT, else a download to data/raw/fsdd
    duration_s: float = 1.0                  # recordings padded / truncated to this length
    n_fft: int = 126                         # STFT window (64 frequency bins), applied at load
    hop_length: int = 250                    # STFT hop (33 frames for 1 s at 8 kHz)
    seed: int = 0                            # image pools, pairing and the audio noise
    checksums: str = ""                      # SHA-256 list; empty: the list pinned in mcrlib

    def __post_init__(self):
        check(self.duration_s > 0, "data.duration_s", self.duration_s, "a duration > 0")
        check(self.n_fft >= 2 and self.hop_length >= 1, "data.n_fft/hop_length",
              (self.n_fft, self.hop_length), "n_fft >= 2 and hop_length >= 1")


def _speaker_pools(labels: np.ndarray, seed: int) -> list[np.ndarray]:
    """The image ids of each speaker's pool: 6 disjoint folds stratified by digit."""
    folds = StratifiedKFold(n_splits=N_SPEAKERS, shuffle=True, random_state=seed)
    return [test for _, test in folds.split(np.zeros(len(labels)), labels)]


def prepare(cfg: PrepareConfig, out_dir: str | Path, download_to: Path | None = DOWNLOAD_TO) -> dict:
    """Verify FSDD, pair every recording with an image, cache waveforms and images; returns the
    recipe record (with the content fingerprint that keys the runs)."""
    out_dir = Path(out_dir)
    root = fsdd.locate(cfg.root, download_to)
    sums = fsdd.read_sums(Path(cfg.checksums) if cfg.checksums else fsdd.PINNED_SUMS)
    files = fsdd.verify(root, sums)
    meta = [fsdd.parse_name(f) for f in files]
    speakers = sorted({s for _, s, _ in meta})
    check(len(speakers) == N_SPEAKERS, "data.avdigits.root", str(root),
          f"FSDD's {N_SPEAKERS} speakers (found {speakers})")
    samples = int(round(cfg.duration_s * 8000))
    waves = np.stack([fsdd.read_fixed(f, samples) for f in tqdm(files, desc="FSDD recordings")])
    digits = load_digits()
    images = (digits.images.reshape(len(digits.images), -1) / 16.0).astype(np.float32)
    pools = _speaker_pools(digits.target, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    labels = np.array([d for d, _, _ in meta])
    speaker = np.array([speakers.index(s) for _, s, _ in meta])
    image_id = np.array([rng.choice(pools[s][digits.target[pools[s]] == d]) for d, s in zip(labels, speaker)])
    tensors = {"wave": torch.from_numpy(waves), "label": torch.from_numpy(labels).long(),
               "speaker": torch.from_numpy(speaker).long(), "image_id": torch.from_numpy(image_id).long(),
               "images": torch.from_numpy(images), "image_label": torch.from_numpy(digits.target).long()}
    save_torch(tensors, out_dir / "corpus.pt")
    digest = hashlib.sha256()
    for value in tensors.values():
        digest.update(value.numpy().tobytes())
    record = {"recipe": {k: v for k, v in asdict(cfg).items() if k != "root"},  # what, not where
               "speakers": speakers, "fingerprint": digest.hexdigest()[:16],
              "samples_per_speaker": {s: int((speaker == i).sum()) for i, s in enumerate(speakers)},
              "image_pool_per_speaker": {s: len(pools[i]) for i, s in enumerate(speakers)}}
    write_text(json.dumps(record, indent=1), out_dir / "recipe.json")
    return record


@dataclass(frozen=True)
class LoadConfig:
    """What a run reads: the prepared folder (its content fingerprint, not its path, is part of
    the run key), the fold, and the degradation recipe (calibrated by the `calibrate` section)."""
    prepared: str = location("data/processed/avdigits")
    fold: int = 0                            # test speaker = speakers[fold], validation = the next
    audio_snr_db: float = 30.0               # white noise on the waveforms at this SNR (dB)
    image_energy: float = 0.3                # share of PCA variance kept in the images
    test_images: int = 1                     # images each test recording is scored against (K)
    audio_features: str = "stft"             # log-magnitude STFT (64 bins) or "mel" (40 mel bands)

    def __post_init__(self):
        check(0 <= self.fold < N_SPEAKERS, "data.fold", self.fold, f"a fold in 0..{N_SPEAKERS - 1} (one per speaker)")
        check(0 < self.image_energy <= 1, "data.image_energy", self.image_energy, "a share in (0, 1]")
        check(self.audio_features in AUDIO_FEATURES, "data.audio_features", self.audio_features,
              f"one of {list(AUDIO_FEATURES)}")
        check(isinstance(self.test_images, int) and 1 <= self.test_images <= MAX_TEST_IMAGES, "data.test_images",
              self.test_images, f"an integer in 1..{MAX_TEST_IMAGES} (a speaker's pool holds ~30 images of a digit)")


def paired_test_images(corpus: dict, k: int) -> torch.Tensor:
    """(recordings, k) image ids: column 0 each recording's own pairing, then k - 1 other images of
    its digit from its speaker's pool, without replacement, drawn once for the whole corpus from
    the recipe's seed (the same in every fold, method and run)."""
    seed = corpus["record"]["recipe"]["seed"]
    image_label = corpus["image_label"].numpy()
    pools = _speaker_pools(image_label, seed)
    rng = np.random.default_rng(seed + 2)
    own = corpus["image_id"].numpy()
    ids = np.empty((len(own), k), dtype=np.int64)
    for row, (digit, speaker, first) in enumerate(zip(corpus["label"].numpy(), corpus["speaker"].numpy(), own)):
        pool = pools[speaker][image_label[pools[speaker]] == digit]
        others = pool[pool != first]
        if len(others) < k - 1:
            raise ValueError(f"data.test_images={k}: speaker {speaker}'s pool has only {len(others) + 1} images of "
                             f"digit {digit}; use test_images <= {len(others) + 1}")
        ids[row] = [first, *rng.choice(others, size=k - 1, replace=False)]
    return torch.from_numpy(ids)


@functools.lru_cache(maxsize=2)
def _noisy_spectrograms(path: str, content: str, snr_db: float, features: str = "stft") -> tuple[dict, torch.Tensor]:
    """(the prepared corpus, log-magnitude STFT of its noisy waveforms): the expensive part of a
    load, shared by every fold and method read in one process. Memoised by the folder's content
    fingerprint too, so a folder prepared again in the same process is read again."""
    folder = Path(path)
    record = json.loads((folder / "recipe.json").read_text())
    corpus = torch.load(folder / "corpus.pt", weights_only=True)
    recipe = record["recipe"]
    waves = corpus["wave"].numpy()
    rng = np.random.default_rng(recipe["seed"] + 1)
    power = (waves ** 2).mean(axis=1, keepdims=True)
    noise = rng.standard_normal(waves.shape, dtype=np.float32) * np.sqrt(power / 10 ** (snr_db / 10)).astype(np.float32)
    if features == "mel":
        transform = torchaudio.transforms.MelSpectrogram(sample_rate=8000, n_fft=recipe["n_fft"], n_mels=N_MELS,
                                                         hop_length=recipe["hop_length"], power=1)
    else:
        transform = torchaudio.transforms.Spectrogram(n_fft=recipe["n_fft"], hop_length=recipe["hop_length"], power=1)
    audio = torch.log(transform(torch.from_numpy(waves + noise)) + 1e-7).unsqueeze(1)
    return {**corpus, "record": record}, audio


def load(params: LoadConfig) -> TensorSplits:
    folder = Path(params.prepared).expanduser()
    # verify: a folder not written by `prepare`, or changed since, is a DataError naming the fix.
    corpus, audio = _noisy_spectrograms(str(folder), fingerprint.verify(folder, "avdigits"), float(params.audio_snr_db),
                                        params.audio_features)
    record = corpus["record"]
    speaker = corpus["speaker"]
    test, val = params.fold, (params.fold + 1) % N_SPEAKERS
    split_rows = {"test": speaker == test, "val": speaker == val}
    split_rows["train"] = ~(split_rows["test"] | split_rows["val"])
    # Standardise each frequency bin with the training speakers' statistics (log magnitudes of
    # silence sit near log(1e-7) = -16; unscaled, the encoder spends its first epochs on the offset).
    train_audio = audio[split_rows["train"]]
    mean, std = train_audio.mean(dim=(0, 3), keepdim=True), train_audio.std(dim=(0, 3), keepdim=True)
    # Images: PCA fitted on the training speakers' pools only (every image id they use).
    images = corpus["images"].numpy()
    train_ids = np.unique(corpus["image_id"][split_rows["train"]].numpy())
    pca = PCA(random_state=0).fit(images[train_ids])
    keep = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), params.image_energy) + 1)
    pca = PCA(n_components=min(keep, images.shape[1]), random_state=0).fit(images[train_ids])
    degraded = torch.from_numpy(pca.inverse_transform(pca.transform(images)).astype(np.float32))
    splits = {}
    for split in SPLITS:
        rows = torch.nonzero(split_rows[split]).squeeze(1)
        ids = corpus["image_id"][rows]
        if split == "test" and params.test_images > 1:   # K rows per recording, recording by recording
            ids = paired_test_images(corpus, params.test_images)[rows].reshape(-1)
            rows = rows.repeat_interleave(params.test_images)
        splits[split] = {"audio": ((audio[rows] - mean[0]) / (std[0] + 1e-6)).contiguous(),
                         "visual": degraded[ids].view(-1, 1, 8, 8),
                         "label": corpus["label"][rows],
                         "group": speaker[rows],          # the speaker
                         "image_id": ids}                 # row of sklearn's load_digits
    return TensorSplits(splits, modalities=("audio", "visual"), n_classes=10,
                        group_names=tuple(record["speakers"]))


SPEC = DatasetSpec(name="avdigits", load_config=LoadConfig, load=load,
                   prepare_config=PrepareConfig, prepare=prepare,
                   encoders={"audio": "resnet2d", "visual": "resnet2d"},
                   root_env=ROOT_ENV, source=fsdd.ARCHIVE_URL)
