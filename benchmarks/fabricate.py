"""Fabricated copies of every paper-profile dataset in its real on-disk layout and at real sizes,
a few samples each: the input of the paper rehearsal (benchmarks/paper_rehearsal.py).

The contents are synthetic (flat colours, sines, noise, one face pasted from the committed test
fixture tests/fixtures/faces/face.flv); the containers, codecs, resolutions, frame rates,
durations, sample rates and feature dimensions are the real datasets' (REAL below), so each
dataset's real `prepare` decodes as much as it would on the real files. What each writer assumes
about the real files, and where it comes from, is in REAL.

The list and table formats are those the test fixtures write (tests/fixtures/*.py), whose
helpers this module reuses where they take a size (the MP4/AVI writer, the affect pickles, the
Sth-Sth HDF5 writer).

    python -m benchmarks.fabricate OUT [--samples N]    # writes OUT/<dataset>/...
"""
from __future__ import annotations

import argparse
import json
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from mcrlib.data.cremad_clips import release_folds
from tests.fixtures import mosi as mosi_fixture
from tests.fixtures import sthsth as sthsth_fixture
from tests.fixtures.faces import FACE
from tests.fixtures.media_files import write_video

# What the writers assume about each real dataset (sizes of the files, not their contents).
REAL = {
    "cremad": "VideoFlash/*.flv: flv1 480x360 at 30 fps, 2-3 s, MP3 audio; AudioWAV/*.wav: 16 kHz mono "
              "16-bit PCM (the corpus README); clips picked from the release's fold-0 train/val/test lists",
    "ave": "AVE/*.mp4: 10 s YouTube clips, H.264 640x360 at 30 fps (assumed; YouTube's 360p), AAC stereo "
           "44.1 kHz; lists Category&VideoID&Quality&Start&End",
    "ucf51": "UCF-101/<Class>/*.avi: 320x240 at 25 fps, MPEG-4 part 2 + MP3 stereo 44.1 kHz, about 7 s "
             "(the UCF101 paper: mean clip 7.21 s); ucfTrainTestlist/ lists with CRLF",
    "mosi": "mosi_data.pkl (MultiBench): 50 steps, vision 20, audio 5, text 300 (GloVe)",
    "mosei": "mosei_senti_data.pkl (MultiBench): 50 steps, vision 35, audio 74, text 300",
    "sthsth": "dataset.hdf5 / flow_dataset.hdf5: one JPEG per frame at 427x240 (Sth-Sth V2's height 240), "
              "about 45 RGB frames a video (12 fps, mean about 3.8 s), flow one frame fewer",
}
AFFECT_STEPS = 50
CREMAD_SIZE, CREMAD_FPS = (480, 360), 30
AVE_SIZE, AVE_FPS, AVE_AUDIO_RATE = (640, 360), 30, 44100
UCF_SIZE, UCF_FPS, UCF_SECONDS, UCF_AUDIO_RATE = (320, 240), 25, 7.0, 44100
STHSTH_SIZE, STHSTH_FRAMES = (427, 240), 45


# ---------------------------------------------------------------- CREMA-D (both families)
def _face(size: int = 192) -> np.ndarray:
    """The face of the committed fixture (its fourth frame, 96 x 96 at (8, 8)), resized."""
    from PIL import Image
    with av.open(str(FACE)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    crop = frames[3][8:104, 8:104]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))


def cremad_clips(n: int) -> list[str]:
    """n official clips, spread over the release's fold-0 train, val and test lists (at least one
    in each), so every split of the prepared folder is non-empty."""
    by_split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for clip, splits in release_folds().items():
        by_split[splits[0]].append(clip)
    order = ["train", "val", "test"]
    picked = []
    for i in range(max(n, 3)):
        split = order[i % 3]
        picked.append(by_split[split][(i // 3) * 97 % len(by_split[split])])
    return list(dict.fromkeys(picked))


def write_cremad_flv(path: Path, seconds: float, seed: int, face: np.ndarray) -> None:
    width, height = CREMAD_SIZE
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 200, size=(height // 8, width // 8, 3), dtype=np.uint8)
    background = np.kron(background, np.ones((8, 8, 1), np.uint8))      # blocky texture
    n, rate = round(seconds * CREMAD_FPS), 22050
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    with av.open(str(path), "w", format="flv") as out:
        video = out.add_stream("flv1", rate=CREMAD_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 800_000
        sound = out.add_stream("libmp3lame", rate=rate)
        sound.layout = "mono"
        step = sound.codec_context.frame_size or 1152
        wave = np.pad(wave, (0, -len(wave) % step))
        done = 0
        for i in range(n):
            image = background.copy()
            top, left = 60 + (i % 20), 140 + (i % 30)
            image[top:top + face.shape[0], left:left + face.shape[1]] = face
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, CREMAD_FPS)
            out.mux(video.encode(frame))
            end = len(wave) if i == n - 1 else int((i + 1) / CREMAD_FPS * rate)
            while done < min(end, len(wave)):
                chunk = av.AudioFrame.from_ndarray(wave[None, done:done + step], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = rate, done
                out.mux(sound.encode(chunk))
                done += step
        out.mux(video.encode())
        out.mux(sound.encode())


def write_cremad(root: str | Path, n: int = 3, seed: int = 0) -> Path:
    """CREMA-D's layout (mcrlib.data.cremad LAYOUT) with n official clips of 2-3 s."""
    from mcrlib.data.cremad_clips import official_actors
    root = Path(root)
    (root / "AudioWAV").mkdir(parents=True, exist_ok=True)
    (root / "VideoFlash").mkdir(parents=True, exist_ok=True)
    clips = cremad_clips(n)
    actors = official_actors()
    rows = ['"ActorID","Age","Sex","Race","Ethnicity"'] + [
        f'{a},30,"{s}","Caucasian","Not Hispanic"' for a, s in sorted(actors.items())]
    (root / "VideoDemographics.csv").write_text("\n".join(rows) + "\n")
    (root / "SentenceFilenames.csv").write_text(
        '"Stimulus_Number","Filename"\n' + "\n".join(f'{i},"{c}"' for i, c in enumerate(clips, 1)))
    rng = np.random.default_rng(seed)
    face = _face()
    for i, clip in enumerate(clips):
        seconds = float(rng.uniform(2.0, 3.0))
        t = np.arange(round(seconds * 16000)) / 16000
        sf.write(str(root / "AudioWAV" / f"{clip}.wav"),
                 (0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)).astype(np.float32), 16000, subtype="PCM_16")
        write_cremad_flv(root / "VideoFlash" / f"{clip}.flv", seconds, seed + i, face)
    return root


# ---------------------------------------------------------------- AVE (both families)
AVE_EVENTS = {"train": [("Church bell", "fab0000trn0", "good", 0, 10), ("Bark", "fab0000trn1", "good", 2, 8),
                        ("Frying (food)", "fab0000trn2", "good", 1, 9)],
              "val": [("Bark", "fab0000val0", "good", 0, 6)],
              "test": [("Church bell", "fab0000tst0", "good", 3, 10)]}


def write_ave(base: str | Path, n: int = 5) -> Path:
    """AVE_Dataset/ (AVE/<id>.mp4 of 10 s, the three lists, Annotations.txt); n >= 3 events, at
    least one per list."""
    root = Path(base) / "AVE_Dataset"
    events = {s: list(e) for s, e in AVE_EVENTS.items()}
    for k in range(max(0, n - 5)):           # more training events
        events["train"].append(("Bark", f"fab0001t{k:03d}", "good", k % 5, 10))
    if n < 5:
        events["train"] = events["train"][:max(1, n - 2)]
    root.mkdir(parents=True, exist_ok=True)
    lines = {s: [f"{c}&{v}&{q}&{a}&{b}" for c, v, q, a, b in e] for s, e in events.items()}
    for split, name in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        (root / name).write_text("\n".join(lines[split]) + "\n")
    (root / "Annotations.txt").write_text("Category&VideoID&Quality&StartTime&EndTime\n"
                                          + "\n".join(lines["train"] + lines["val"] + lines["test"]) + "\n")
    for e in (e for es in events.values() for e in es):
        write_video(root / "AVE" / f"{e[1]}.mp4", 10.0, fps=AVE_FPS, width=AVE_SIZE[0], height=AVE_SIZE[1],
                    audio_rate=AVE_AUDIO_RATE)
    return root


# ---------------------------------------------------------------- UCF-51
UCF_CLASSES = {"Archery": 3, "BabyCrawling": 4}      # real classInd indices, classes with audio


def write_ucf(root: str | Path, train_groups: int = 6, seconds: float = UCF_SECONDS) -> Path:
    """UCF-101/ and ucfTrainTestlist/ (split 1: test groups 1-7): per class, `train_groups`
    training groups (8..) of one clip and one test clip (group 1), each `seconds` long. Validation
    holds out 10% of the training groups stratified by class, so at least 6 groups a class are
    needed (2 classes)."""
    root = Path(root)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for c, i in UCF_CLASSES.items()).encode())
    train = [f"{c}/v_{c}_g{g:02d}_c01.avi" for c in UCF_CLASSES for g in range(8, 8 + train_groups)]
    test = [f"{c}/v_{c}_g01_c01.avi" for c in UCF_CLASSES]
    for split in (1, 2, 3):
        (lists / f"trainlist0{split}.txt").write_bytes(
            "".join(f"{n} {UCF_CLASSES[n.split('/')[0]]}\r\n" for n in train).encode())
        (lists / f"testlist0{split}.txt").write_bytes("".join(f"{n}\r\n" for n in test).encode())
    for name in train + test:
        write_video(root / "UCF-101" / name, seconds, fps=UCF_FPS, width=UCF_SIZE[0], height=UCF_SIZE[1],
                    audio_rate=UCF_AUDIO_RATE, other_channel_tone=3000.0)
    return root


# ---------------------------------------------------------------- CMU-MOSI / MOSEI
def write_affect(root: str | Path, dataset: str, per_split: int = 8) -> Path:
    """The MultiBench pickle with the real feature dimensions and 50 steps (the fixture's writer)."""
    return mosi_fixture.write_affect_pickle(root, dataset, defects=False, steps=AFFECT_STEPS,
                                            sizes={"train": per_split, "valid": per_split, "test": per_split})


# ---------------------------------------------------------------- Something-Something V2
def _jpeg(rng: np.random.Generator, width: int, height: int, quality: int = 90) -> bytes:
    import io

    from PIL import Image
    small = rng.integers(0, 255, size=(height // 8, width // 8 + 1, 3), dtype=np.uint8)
    image = np.kron(small, np.ones((8, 8, 1), np.uint8))[:height, :width]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_sthsth(root: str | Path, n: int = 6, seed: int = 0) -> Path:
    """The multimodal-distillation layout (as tests/fixtures/sthsth.py): dataset.hdf5 and
    flow_dataset.hdf5 (a 1-D dataset of JPEG bytes per video), the labels file and the two lists;
    n videos, a third of them in the validation list."""
    import h5py
    root = Path(root)
    (root / "something_something_detections").mkdir(parents=True, exist_ok=True)
    labels = {t: str(k) for k, t in enumerate(sthsth_fixture.REAL_TEMPLATES)}
    labels.update({f"Fixture template {k}": str(k)
                   for k in range(len(sthsth_fixture.REAL_TEMPLATES), sthsth_fixture.N_CLASSES)})
    (root / "something-something-v2-labels.json").write_text(json.dumps(labels, indent=1))
    rng = np.random.default_rng(seed)
    width, height = STHSTH_SIZE
    split_of = {f"{9000 + i}": ("val" if i % 3 == 2 else "train") for i in range(max(n, 3))}
    with h5py.File(root / "dataset.hdf5", "w") as frgb, h5py.File(root / "flow_dataset.hdf5", "w") as fflow:
        for vid in split_of:
            frames = STHSTH_FRAMES + int(rng.integers(-5, 6))
            sthsth_fixture._write_video(frgb, vid, [_jpeg(rng, width, height) for _ in range(frames)],
                                        "dataset", random.Random(0))
            sthsth_fixture._write_video(fflow, vid, [_jpeg(rng, width, height) for _ in range(frames - 1)],
                                        "dataset", random.Random(0))
    for split in ("train", "val"):
        ids = [v for v, s in split_of.items() if s == split]
        # classes in pairs (0, 0, 1, 1, ...): val_from_train holds out a video of a class with two
        entries = [{"id": v, "template": sthsth_fixture.BRACKETED[(k // 2) % 3]} for k, v in enumerate(ids)]
        (root / "something_something_detections" / f"{split}_dataset_flow_aligned.json").write_text(
            json.dumps(entries))
    return root


# ---------------------------------------------------------------- all of them
def fabricate(out: str | Path, samples: dict | None = None) -> dict[str, Path]:
    """Every raw dataset under out/; returns {prepare name: its settings' `root`}.
    `samples`: per raw dataset (cremad, ave, ucf51, affect, sthsth) how many samples."""
    out = Path(out)
    n = {"cremad": 3, "ave": 5, "ucf51": 6, "affect": 8, "sthsth": 6, **(samples or {})}
    cremad = write_cremad(out / "CREMA-D", n["cremad"])
    ave = write_ave(out / "AVE", n["ave"])
    ucf = write_ucf(out / "UCF101", n["ucf51"])
    affect = out / "MultiBench"
    for dataset in ("mosi", "mosei"):
        write_affect(affect, dataset, n["affect"])
    sthsth = write_sthsth(out / "Sth-Sth", n["sthsth"])
    return {"cremad": cremad, "cremad_faces": cremad, "ave": ave, "ave_pretrained": ave, "ucf51": ucf,
            "mosi": affect, "mosei": affect, "sthsth": sthsth}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    for name, root in fabricate(args.out).items():
        print(f"{name}: {root}")


if __name__ == "__main__":
    main()
