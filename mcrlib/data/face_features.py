"""Face features of video frames: MTCNN finds the face in every frame, a frozen EfficientNet-B2
describes the crop (1,408 features a frame). Paper appendix A.3: CREMA-D's pretrained-encoder
("Conformer") family reads these per-frame face descriptors (mcrlib.data.cremad_faces).

Detector: `facenet_pytorch.MTCNN` (its P/R/O-net weights ship inside the facenet-pytorch wheel, so
nothing is downloaded). facenet-pytorch 2.6.0 pins torch<2.3, torchvision<0.18, numpy<2 and
Pillow<10.3 in its metadata, which conflict with this project's torch; its code runs on the
project's torch, so it is installed without its pins: `pip install --no-deps facenet-pytorch==2.6.0`
(the Makefile's setup does). The largest face of a frame is kept.

Descriptor: torchvision's `efficientnet_b2` with its classifier removed (features -> avgpool ->
flatten: 1,408), in eval mode. Its weights (`weights`): a torchvision weights name of
`EfficientNet_B2_Weights` ("IMAGENET1K_V1": torchvision downloads it into the torch hub cache,
~/.cache/torch/hub/checkpoints, on a machine with internet), the path of a local state-dict file
(that checkpoint copied from such a machine), or "random" (a random initialisation drawn with a
fixed seed, its BatchNorm statistics set from one batch of noise: tests only). A crop is
preprocessed as `EfficientNet_B2_Weights.IMAGENET1K_V1.transforms()` does: resized (bicubic,
antialiased) so its shorter side is 288, centre-cropped to 288 x 288, scaled to [0, 1] and
normalised with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225);
`face_size` changes the 288 (tests use small crops). The descriptor runs in batches of frames.

No-face rule (the release publishes none; this one is ours): a frame in which MTCNN finds no
face takes the box of the nearest earlier frame that has one, else of the nearest later frame
that has one (so leading frames without a face take the first face's box). A clip in which no
frame has a face is described from the centred square crop (side min(H, W)) of each frame, and
is listed in the data report. Boxes are clipped to the frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mcrlib.errors import DataError

N_FEATURES = 1408                 # EfficientNet-B2's pooled features
FACE_SIZE = 288                   # EfficientNet_B2_Weights.IMAGENET1K_V1.transforms(): resize 288, crop 288
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # its normalisation (ImageNet)
RANDOM_SEED = 0                   # the "random" descriptor's initialisation
INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"
WHY_NO_DEPS = ("--no-deps because facenet-pytorch 2.6.0 pins torch<2.3, torchvision<0.18, numpy<2 and "
               "Pillow<10.3, which conflict with this project's versions; its code runs on them")


def resolve_device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu' or 'cuda'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DataError("device='cuda' but torch sees no CUDA device: use device 'auto' or 'cpu'")
    return torch.device(device)


# ---------------------------------------------------------------- the detector
class FaceDetector:
    """MTCNN (facenet-pytorch) keeping the largest face of each frame."""

    def __init__(self, *, thresholds=(0.6, 0.7, 0.7), min_face_size: int = 20, factor: float = 0.709,
                 device: str = "auto", batch_size: int = 32):
        try:
            from facenet_pytorch import MTCNN
        except ImportError as err:
            raise DataError(f"face detection needs facenet-pytorch (MTCNN, its weights inside the wheel), "
                            f"which is not importable ({err}). Install it with `{INSTALL}` ({WHY_NO_DEPS}); "
                            f"`make setup` does.") from None
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.mtcnn = MTCNN(min_face_size=min_face_size, thresholds=list(thresholds), factor=factor,
                           select_largest=True, keep_all=False, post_process=False, device=self.device)

    def boxes(self, frames: np.ndarray) -> list[np.ndarray | None]:
        """frames (T, H, W, 3) uint8 -> per frame the largest face's box (x1, y1, x2, y2) in
        pixels (float64, not yet clipped), or None where no face is found."""
        out = []
        for start in range(0, len(frames), self.batch_size):
            chunk = np.ascontiguousarray(frames[start:start + self.batch_size])
            with torch.inference_mode():
                found, _ = self.mtcnn.detect(chunk)
            for boxes in found:
                # detect sorts a frame's boxes largest first (select_largest)
                out.append(None if boxes is None else np.asarray(boxes[0], dtype=np.float64))
        return out


def fill_boxes(boxes: list, height: int, width: int) -> tuple[np.ndarray, dict]:
    """The no-face rule (module docstring): integer boxes (T, 4) x1, y1, x2, y2 clipped to the
    frame (at least 1 pixel each way), and the facts frames, frames_with_face, frames_filled,
    no_face_clip."""
    n = len(boxes)
    found = [i for i, b in enumerate(boxes) if b is not None]
    facts = {"frames": n, "frames_with_face": len(found), "frames_filled": 0, "no_face_clip": not found}
    out = np.zeros((n, 4), dtype=np.int64)
    if not found:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        out[:] = (left, top, left + side, top + side)
        return out, facts
    previous = None
    for i in range(n):
        if boxes[i] is not None:
            previous = i
            source = i
        else:
            source = previous if previous is not None else found[0]
            facts["frames_filled"] += 1
        x1, y1, x2, y2 = boxes[source]
        x1, y1 = int(np.clip(np.floor(x1), 0, width - 1)), int(np.clip(np.floor(y1), 0, height - 1))
        x2, y2 = int(np.clip(np.ceil(x2), x1 + 1, width)), int(np.clip(np.ceil(y2), y1 + 1, height))
        out[i] = (x1, y1, x2, y2)
    return out, facts


# ---------------------------------------------------------------- the descriptor
def _fetch_hint(name: str) -> str:
    return (f"On a machine with internet, run `python -c \"from torchvision.models import efficientnet_b2; "
            f"efficientnet_b2(weights='{name}')\"`: it saves the checkpoint under ~/.cache/torch/hub/checkpoints/ "
            f"(efficientnet_b2_rwightman-c35c1473.pth for IMAGENET1K_V1); copy that file into this machine's "
            f"~/.cache/torch/hub/checkpoints/, or pass its path as the weights (a local state-dict file).")


def _calibrate_batch_norm(model: torch.nn.Module) -> None:
    """Set every BatchNorm's running statistics from one batch of noise. A freshly initialised
    EfficientNet in eval mode (running mean 0, variance 1) shrinks its input through ~23 blocks
    of squeeze-excitation gates to outputs of ~1e-15; calibrated, the "random" descriptor gives
    features of unit scale, which tests can z-score."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None               # a cumulative average: one batch sets the statistics
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 64, 64))
    for m in norms:
        m.momentum = 0.1
    model.eval()


def build_descriptor(weights: str = "IMAGENET1K_V1") -> torch.nn.Module:
    """EfficientNet-B2 without its classifier (outputs 1,408 features), in eval mode, frozen."""
    from torchvision.models import EfficientNet_B2_Weights, efficientnet_b2
    names = list(EfficientNet_B2_Weights.__members__)
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = efficientnet_b2(weights=None)
            _calibrate_batch_norm(model)
    elif weights in names:
        try:
            model = efficientnet_b2(weights=EfficientNet_B2_Weights[weights])
        except Exception as err:        # no network, a truncated download, a corrupt cache file
            raise DataError(f"the EfficientNet-B2 weights {weights!r} (torchvision) could not be loaded "
                            f"({type(err).__name__}: {err}). {_fetch_hint(weights)}") from None
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataError(f"descriptor weights {weights!r} are neither a torchvision EfficientNet_B2_Weights "
                            f"name ({', '.join(names)}), nor an existing state-dict file, nor 'random'. "
                            f"{_fetch_hint(names[0])}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            model = efficientnet_b2(weights=None)
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("classifier.")]
            if missing or unexpected:
                raise ValueError(f"not an EfficientNet-B2 state dict (missing {missing[:3]}, "
                                 f"unexpected {list(unexpected)[:3]})")
        except Exception as err:
            raise DataError(f"descriptor weights file {path} could not be loaded as an EfficientNet-B2 "
                            f"state dict ({type(err).__name__}: {err}). {_fetch_hint(names[0])}") from None
    model.classifier = torch.nn.Identity()
    model.eval().requires_grad_(False)
    return model


def preprocess(frame: torch.Tensor, box, face_size: int = FACE_SIZE) -> torch.Tensor:
    """A crop of frame (3, H, W) uint8 at box (x1, y1, x2, y2), as EfficientNet-B2's transforms:
    shorter side to face_size (bicubic, antialiased), centre crop, [0, 1], ImageNet normalisation."""
    from torchvision.transforms import functional as F
    from torchvision.transforms import InterpolationMode
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = frame[:, y1:y2, x1:x2]
    crop = F.resize(crop, [face_size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    crop = F.center_crop(crop, [face_size])
    crop = F.convert_image_dtype(crop, torch.float32)
    return F.normalize(crop, MEAN, STD)


@dataclass
class FacePipeline:
    """frames -> per-frame face descriptors: the detector, the descriptor and their settings."""
    detector: FaceDetector
    descriptor: torch.nn.Module
    device: torch.device
    face_size: int = FACE_SIZE
    batch_size: int = 32

    @classmethod
    def build(cls, *, weights: str = "IMAGENET1K_V1", thresholds=(0.6, 0.7, 0.7), min_face_size: int = 20,
              factor: float = 0.709, face_size: int = FACE_SIZE, device: str = "auto",
              batch_size: int = 32) -> "FacePipeline":
        dev = resolve_device(device)
        detector = FaceDetector(thresholds=thresholds, min_face_size=min_face_size, factor=factor,
                                device=str(dev), batch_size=batch_size)
        return cls(detector, build_descriptor(weights).to(dev), dev, face_size, batch_size)

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, dict]:
        """frames (T, H, W, 3) uint8 -> (features (T, 1408) float32, facts: frames,
        frames_with_face, frames_filled, no_face_clip)."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
            raise ValueError(f"frames: expected (T, H, W, 3) uint8 with T >= 1, got {frames.shape} {frames.dtype}")
        boxes, facts = fill_boxes(self.detector.boxes(frames), frames.shape[1], frames.shape[2])
        images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        out = np.empty((len(frames), N_FEATURES), dtype=np.float32)
        for start in range(0, len(frames), self.batch_size):
            stop = min(start + self.batch_size, len(frames))
            batch = torch.stack([preprocess(images[i], boxes[i], self.face_size) for i in range(start, stop)])
            with torch.inference_mode():
                out[start:stop] = self.descriptor(batch.to(self.device)).float().cpu().numpy()
        return out, facts


def clip_features(frames: np.ndarray, pipeline: FacePipeline) -> tuple[np.ndarray, dict]:
    """A clip's frames (T, H, W, 3) uint8 -> (features (T, 1408) float32, facts): `pipeline(frames)`."""
    return pipeline(frames)
