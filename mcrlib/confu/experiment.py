"""ConFu's experiments here: AV-MNIST's protocol on AV-Digits, and a three-modality XOR case.

Reference: ConFu (Koutoupis et al., arXiv 2511.21331, CVPR 2026; code estafons/confu,
`src/experiments/av_mnist/confu.py`): three modalities (image, audio, a caption of the label)
aligned self-supervised; zero-shot classification of the fused (image, audio) embedding against the
ten captions, beside image alone and audio alone; one-to-one and two-to-one retrieval; 5 runs.

`run_avdigits`: AV-Digits (mcrlib.data.avdigits: 8x8 digits, FSDD audio) with the caption of each
digit (`text_encoder`) as the third modality, leave-one-speaker-out folds x seeds. The caption is
a function of the label only, so its "retrieval" gallery is the ten captions: two-to-one and
one-to-one retrieval into captions are zero-shot accuracy at 1 and 5. Retrieval between image and
audio, and the two-to-one (image, caption) -> audio and (audio, caption) -> image, are
category-level over the test split (`evaluate`).

`run_xor`: mcrlib.data.synthetic_xor: x1 carries u, x2 carries v, x3 carries (u + v) mod C. Every
pair of modalities is independent, so a pairwise objective has nothing but sample identity to
align; only a term that sees x1 and x2 together can find x3's dependency. Two-to-one retrieval
(x1, x2) -> x3, one-to-one x1 -> x3 and x2 -> x3, and linear probes for y = (u + v) mod C.

Methods: "confu" (λ = 0.5), "pairwise" (ConFu's code at λ = 0), "symile" and "gram"
(mcrlib.confu.model), the three the ConFu paper compares against.
Every run trains for a fixed number of epochs (no early stopping, no label seen in training) and
is evaluated once. `paired_table` compares the methods run by run: AV-Digits units (fold, seed)
with folds as fixed blocks (mcrlib.analysis.inference, as the claims report), XOR units the seeds
(each seed draws its own data).

Deviations from the authors' study, and why: AV-Digits in place of AV-MNIST (no download here;
same structure: digit images, spoken digits, captions); small MLP / GRU encoders from scratch;
category-level retrieval (above); the recipe of `ConFuStudy` (learning rate, epochs) fixed for a
one-core budget, stated in params.yaml before any run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from mcrlib.analysis.inference import compare
from mcrlib.config import check, from_dict
from mcrlib.confu.evaluate import (NATIVE_SCORER, VECTOR_SCORERS, dot_scores, linear_probe, retrieval_at_k,
                                   two_to_one_query, two_to_one_scores, zero_shot_accuracy)
from mcrlib.confu.model import ConFuModel, MLPEncoder
from mcrlib.confu.text_encoder import CaptionEncoder, caption_tokens
from mcrlib.confu.train import embed, fit

METHODS = ("confu", "pairwise", "symile", "gram")
COLUMNS = ["dataset", "method", "fold", "seed", "family", "task", "metric", "value"]


@dataclass(frozen=True)
class ModelParams:
    hidden_dim: int = 256          # MLP encoders' hidden width
    encoder_dim: int = 128         # e_m: every encoder's output width
    embed_dim: int = 64            # the shared space
    fusion_hidden: int = 512       # ConFu's fusion MLP (authors: 512)
    dropout: float = 0.1           # in the fusion MLP (authors: 0.1)
    text_embed: int = 32           # caption encoder: word embedding, GRU width
    text_hidden: int = 64


@dataclass(frozen=True)
class TrainParams:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-4               # authors: 1e-4
    weight_decay: float = 1e-4     # authors: 1e-4
    progress: bool = True

    def __post_init__(self):
        check(self.epochs >= 1, "confu.train.epochs", self.epochs, "an integer >= 1")
        check(self.batch_size >= 2, "confu.train.batch_size", self.batch_size, "an integer >= 2")
        check(self.lr > 0, "confu.train.lr", self.lr, "a learning rate > 0")


@dataclass(frozen=True)
class AVDigitsParams:
    folds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    seeds: tuple[int, ...] = (0, 1)
    data: dict = field(default_factory=dict)      # mcrlib.data.avdigits.LoadConfig's content keys


@dataclass(frozen=True)
class XorParams:
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    data: dict = field(default_factory=dict)      # mcrlib.data.synthetic_xor.SyntheticXorConfig; data_seed = seed


@dataclass(frozen=True)
class ConFuStudy:
    """The `confu` section of params.yaml. `avdigits` / `xor` null or absent: that experiment is not run."""
    profile: str = "quick"
    methods: tuple[str, ...] = METHODS
    lam: float = 0.5
    tau: float = 0.07
    probe_max_iter: int = 500
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    avdigits: AVDigitsParams | None = None
    xor: XorParams | None = None

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        check(not unknown and len(self.methods) > 0, "confu.methods", list(self.methods), f"a list of {list(METHODS)}")
        check(0 < self.lam <= 1, "confu.lam", self.lam, "ConFu's weight of the fused terms in (0, 1] (pairwise is λ = 0)")
        check(self.tau > 0, "confu.tau", self.tau, "a temperature > 0")


def load_study(section: dict) -> ConFuStudy:
    return from_dict(ConFuStudy, section, "confu")


def build_model(study: ConFuStudy, method: str, input_dims: dict[str, int], *, seed: int) -> ConFuModel:
    """A fresh model of `method` (seeded): MLP encoders for the `input_dims` modalities (flattened
    width each), the caption encoder for a modality of width None."""
    torch.manual_seed(seed)
    p = study.model
    encoders = {m: (CaptionEncoder(embed_dim=p.text_embed, hidden_dim=p.text_hidden, out_dim=p.encoder_dim)
                    if dim is None else MLPEncoder(in_dim=dim, hidden_dim=p.hidden_dim, out_dim=p.encoder_dim))
                for m, dim in input_dims.items()}
    objective, lam = {"confu": ("confu", study.lam), "pairwise": ("confu", 0.0), "symile": ("symile", study.lam),
                      "gram": ("gram", study.lam)}[method]
    return ConFuModel(encoders=encoders, embed_dim=p.embed_dim, fusion_hidden=p.fusion_hidden, dropout=p.dropout,
                      objective=objective, lam=lam, tau=study.tau)


def _train(study, method, data, dims, seed, desc):
    model = build_model(study, method, dims, seed=seed)
    t = study.train
    history = fit(model, data, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
                  seed=seed, progress=t.progress, desc=desc)
    return model, history


def _scorers(method: str) -> dict[str, str]:
    """The method's own two-to-one scorer and, where different, the pairwise sum."""
    return {"native": NATIVE_SCORER[method], **({"sum": "sum"} if NATIVE_SCORER[method] != "sum" else {})}


def _native_probe(method: str, pair: tuple[str, str]) -> dict:
    """The linear probe on the method's own two-to-one query vector; none for GRAM, whose volume
    score has no query vector (its pair is probed as [z_i ‖ z_j], as every method's)."""
    if NATIVE_SCORER[method] not in VECTOR_SCORERS:
        return {}
    return {f"{'+'.join(pair)} (native)": lambda e: two_to_one_query(e, pair, NATIVE_SCORER[method])}


def _eval_avdigits(model, method, train, test, n_classes, max_iter, seed) -> list[tuple[str, str, str, float]]:
    tr, te = embed(model, train), embed(model, test)
    y_tr, y = train["label"], test["label"]
    with torch.no_grad():                 # the gallery: the ten captions, one per digit
        captions = model.modality_embedding("caption", caption_tokens(torch.arange(n_classes)))
    rows = []
    zero_shot = {f"image+audio ({name})": two_to_one_scores(te, ("image", "audio"), captions, scorer)
                 for name, scorer in _scorers(method).items()}
    zero_shot |= {m: dot_scores(te["z"][m], captions) for m in ("image", "audio")}
    for name, scores in zero_shot.items():
        for k in (1, 5):
            rows.append(("zero-shot", f"{name} → caption", f"acc@{k}", zero_shot_accuracy(scores, y, k)))
    for (i, j), k in ((("image", "caption"), "audio"), (("audio", "caption"), "image")):
        for name, scorer in _scorers(method).items():
            for at, value in retrieval_at_k(two_to_one_scores(te, (i, j), te["z"][k], scorer), y, y).items():
                rows.append(("retrieval", f"{i}+{j} ({name}) → {k}", f"R@{at}", value))
    for i, k in (("image", "audio"), ("audio", "image")):
        for at, value in retrieval_at_k(dot_scores(te["z"][i], te["z"][k]), y, y).items():
            rows.append(("retrieval", f"{i} → {k}", f"R@{at}", value))
    probes = {"image": lambda e: e["z"]["image"], "audio": lambda e: e["z"]["audio"],
              **_native_probe(method, ("image", "audio")),
              "image ‖ audio": lambda e: torch.cat([e["z"]["image"], e["z"]["audio"]], 1)}
    for name, features in probes.items():
        rows.append(("linear probe", name, "acc", linear_probe(features(tr), y_tr, features(te), y,
                                                               max_iter=max_iter, seed=seed)))
    return rows


def run_avdigits(study: ConFuStudy, prepared: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, training curves) of every method x fold x seed of `study.avdigits` on the AV-Digits
    folder `prepared` (written by `python -m mcrlib.data.prepare avdigits`)."""
    from mcrlib.data.avdigits import LoadConfig, load
    if study.avdigits is None:
        raise ValueError("run_avdigits: the study's avdigits section is null; give it folds and seeds")
    rows, curves = [], []
    for fold in study.avdigits.folds:
        splits = load(from_dict(LoadConfig, {**study.avdigits.data, "prepared": str(prepared), "fold": fold},
                                "confu.avdigits.data")).splits
        data = {name: {"image": s["visual"].flatten(1), "audio": s["audio"].flatten(1),
                       "caption": caption_tokens(s["label"]), "label": s["label"]}
                for name, s in splits.items()}
        dims = {"image": data["train"]["image"].shape[1], "audio": data["train"]["audio"].shape[1], "caption": None}
        for seed in study.avdigits.seeds:
            for method in study.methods:
                model, history = _train(study, method, data["train"], dims, seed, f"AV-Digits {method} f{fold} s{seed}")
                key = {"dataset": "AV-Digits", "method": method, "fold": fold, "seed": seed}
                curves += [{**key, "epoch": e + 1, "loss": loss} for e, loss in enumerate(history)]
                for family, task, metric, value in _eval_avdigits(model, method, data["train"], data["test"], 10,
                                                                  study.probe_max_iter, seed):
                    rows.append({**key, "family": family, "task": task, "metric": metric, "value": value})
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(curves)


def _eval_xor(model, method, train, test, max_iter, seed) -> list[tuple[str, str, str, float]]:
    tr, te = embed(model, train), embed(model, test)
    y_tr, y = train["label"], test["label"]
    rows = []
    for name, scorer in _scorers(method).items():
        for at, value in retrieval_at_k(two_to_one_scores(te, ("x1", "x2"), te["z"]["x3"], scorer), y, y).items():
            rows.append(("retrieval", f"x1+x2 ({name}) → x3", f"R@{at}", value))
    for i in ("x1", "x2"):
        for at, value in retrieval_at_k(dot_scores(te["z"][i], te["z"]["x3"]), y, y).items():
            rows.append(("retrieval", f"{i} → x3", f"R@{at}", value))
    probes = {**_native_probe(method, ("x1", "x2")),
              "x1 ‖ x2": lambda e: torch.cat([e["z"]["x1"], e["z"]["x2"]], 1),
              "x1": lambda e: e["z"]["x1"], "x2": lambda e: e["z"]["x2"]}
    for name, features in probes.items():
        rows.append(("linear probe", f"{name} → (u + v) mod C", "acc",
                     linear_probe(features(tr), y_tr, features(te), y, max_iter=max_iter, seed=seed)))
    return rows


def run_xor(study: ConFuStudy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, training curves) of every method x seed of `study.xor` (data_seed = seed)."""
    from mcrlib.data.synthetic_xor import MODALITIES, SyntheticXorConfig, load
    if study.xor is None:
        raise ValueError("run_xor: the study's xor section is null; give it seeds and data")
    rows, curves = [], []
    for seed in study.xor.seeds:
        splits = load(from_dict(SyntheticXorConfig, {**study.xor.data, "data_seed": seed}, "confu.xor.data")).splits
        data = {name: {**{m: s[m] for m in MODALITIES}, "label": s["label"]} for name, s in splits.items()}
        dims = {m: data["train"][m].shape[1] for m in MODALITIES}
        for method in study.methods:
            model, history = _train(study, method, data["train"], dims, seed, f"XOR {method} s{seed}")
            key = {"dataset": "XOR", "method": method, "fold": 0, "seed": seed}
            curves += [{**key, "epoch": e + 1, "loss": loss} for e, loss in enumerate(history)]
            for family, task, metric, value in _eval_xor(model, method, data["train"], data["test"],
                                                         study.probe_max_iter, seed):
                rows.append({**key, "family": family, "task": task, "metric": metric, "value": value})
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(curves)


def paired_table(results: pd.DataFrame, *, comparisons=(("confu", "pairwise"), ("symile", "pairwise"),
                                                         ("gram", "pairwise"), ("confu", "symile"),
                                                         ("confu", "gram"))) -> pd.DataFrame:
    """One row per (dataset, family, task, metric) and comparison (method - reference), paired
    over units: (fold, seed) with folds as fixed blocks where there are several folds, else the
    seeds (`mcrlib.analysis.inference.compare`; 95% intervals)."""
    cells = ["dataset", "family", "task", "metric"]
    rows = []
    for key, part in results.groupby(cells, sort=False):
        several_folds = part["fold"].nunique() > 1
        units, block = (("fold", "seed"), "fold") if several_folds else (("seed",), None)
        for method, reference in comparisons:
            if {method, reference} <= set(part["method"]):
                rows.append({**dict(zip(cells, key)), **compare(part, method=method, reference=reference,
                                                                value="value", units=units, block=block)})
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame, *, scale: float = 100.0, digits: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means, text): rows (dataset, family, task, metric) in order of appearance, columns the
    methods; `means` the mean over units (fractions), `text` "mean ± std" (in percent by default)."""
    rows = ["dataset", "family", "task", "metric"]
    stats = results.groupby([*rows, "method"], sort=False)["value"].agg(["mean", "std"]).reset_index()
    stats["text"] = [f"{m * scale:.{digits}f} ± {0 if pd.isna(s) else s * scale:.{digits}f}"
                     for m, s in zip(stats["mean"], stats["std"])]
    order = list(dict.fromkeys(map(tuple, results[rows].itertuples(index=False))))
    methods = [m for m in METHODS if m in set(results["method"])]
    shape = lambda column: stats.pivot(index=rows, columns="method", values=column).reindex(order)[methods]
    return shape("mean"), shape("text")
