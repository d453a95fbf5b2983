"""The Free Spoken Digit Dataset: locate (or download), verify and read its recordings.

3,000 mono 8 kHz WAV files `{digit}_{speaker}_{take}.wav` (6 speakers x 10 digits x 50 takes),
from the public repository Jakobovski/free-spoken-digit-dataset at a pinned commit (CC BY-SA 4.0).
Every file is checked against the SHA-256 list pinned in this package before it is used.
"""
from __future__ import annotations

import hashlib
import io
import os
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from mcrlib.errors import DataError

COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
ARCHIVE_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{COMMIT}.zip"
PINNED_SUMS = Path(__file__).with_name("fsdd_sha256sums.txt")
LAYOUT = ("an FSDD folder holding recordings/{digit}_{speaker}_{take}.wav (3,000 files); get it from "
          f"the GitHub repository Jakobovski/free-spoken-digit-dataset at commit {COMMIT} "
          "(set data.avdigits.root or the environment variable MCR_FSDD_ROOT to its folder)")


def read_sums(path: Path = PINNED_SUMS) -> dict[str, str]:
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            fields = line.split(maxsplit=1)
            if len(fields) != 2:
                raise DataError(f"{path}, line {number}: {line!r} is not `<sha256>  <file name>`: "
                                "expected a SHA-256 list as written by sha256sum")
            sums[fields[1].strip().lstrip("*")] = fields[0]
    return sums


def download(dest: Path, url: str = ARCHIVE_URL) -> Path:
    """Fetch the pinned archive and unpack its recordings into dest/recordings."""
    print(f"[mcrlib] downloading FSDD from {url}")
    with urllib.request.urlopen(url, timeout=120) as response:
        payload = response.read()
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except zipfile.BadZipFile:   # e.g. a captive portal's login page
        raise DataError(f"the download from {url} is not a zip archive; point to {LAYOUT}") from None
    (dest / "recordings").mkdir(parents=True, exist_ok=True)
    for member in archive.namelist():
        if "/recordings/" in member and member.endswith(".wav"):
            (dest / "recordings" / Path(member).name).write_bytes(archive.read(member))
    return dest


def locate(root: str, download_to: Path | None = None) -> Path:
    """The FSDD folder: `root`, else $MCR_FSDD_ROOT, else a download into `download_to`."""
    root = root or os.environ.get("MCR_FSDD_ROOT", "")
    if root:
        path = Path(root).expanduser()
        if not (path / "recordings").is_dir():
            raise DataError(f"{path} has no recordings/ folder: expected {LAYOUT}")
        return path
    if download_to is None:
        raise DataError(f"no FSDD folder given: expected {LAYOUT}")
    if not (download_to / "recordings").is_dir():
        try:
            download(download_to)
        except OSError as err:
            raise DataError(f"could not download FSDD ({err}); without internet, point to "
                                    f"{LAYOUT}") from None
    return download_to


def verify(root: Path, sums: dict[str, str]) -> list[Path]:
    """Every pinned file present with its SHA-256; a missing or changed file is an error naming it."""
    files, missing, changed = [], [], []
    for name, digest in sorted(sums.items()):
        path = root / "recordings" / name
        if not path.exists():
            missing.append(name)
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            changed.append(name)
        files.append(path)
    if missing or changed:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if changed:
            parts.append(f"{len(changed)} with a wrong SHA-256 (e.g. {', '.join(changed[:3])})")
        raise DataError(f"FSDD at {root} does not match the pinned checksums: {'; '.join(parts)}. "
                         f"Expected {LAYOUT}")
    return files


def parse_name(path: Path) -> tuple[int, str, int]:
    """(digit, speaker, take) from `{digit}_{speaker}_{take}.wav`."""
    digit, speaker, take = path.stem.split("_")
    return int(digit), speaker, int(take)


def read_fixed(path: Path, samples: int) -> np.ndarray:
    """The recording as float32, zero-padded or truncated to `samples` (8 kHz mono)."""
    audio, rate = sf.read(path, dtype="float32")
    if rate != 8000 or audio.ndim != 1:
        raise ValueError(f"{path}: expected mono 8 kHz audio, got {rate} Hz with shape {audio.shape}")
    out = np.zeros(samples, dtype=np.float32)
    out[:min(samples, len(audio))] = audio[:samples]
    return out
