"""Evaluating aligned embeddings: two-to-one scores, zero-shot classification, retrieval, probes.

Every score is a dot product of a query vector with a gallery embedding:
- one-to-one, modality i -> k:         z_i · z_k
- two-to-one, pair (i, j) -> k, by scorer
    "fused"    ConFu's fused embedding:  f_ij · z_k               (ConFu's own)
    "sum"      the two pairwise scores:  (z_i + z_j) · z_k = z_i·z_k + z_j·z_k   (pairwise's own)
    "product"  Symile's MIP:             (z_i ⊙ z_j) · z_k = MIP(z_i, z_j, z_k)  (Symile's own)
`NATIVE_SCORER` gives each method the scorer its objective trains; "sum" is defined for all three.

Zero-shot (ConFu's AV-MNIST protocol): the gallery is one embedding per class (the caption of each
digit); a query is right when its best-scoring class is its label. Retrieval here is category-level
(`retrieval_at_k`): in AV-Digits and in the XOR data the modalities share only the class (an image
is a random same-digit image; x3 carries only (u + v) mod C), so the one partner of a query has many
indistinguishable twins and instance-level recall is capped near 1 / (items per class). A query is
a hit at k when one of its k best-scoring gallery items has its class. Linear probes: scikit-learn's
LogisticRegression on standardised frozen embeddings, fitted on the training split, scored on test.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SCORERS = ("fused", "sum", "product")
NATIVE_SCORER = {"confu": "fused", "pairwise": "sum", "symile": "product"}


def two_to_one_query(embeddings: dict, pair: tuple[str, str], scorer: str) -> torch.Tensor:
    """(N, d) query vectors of pair (i, j) for `scorer` (module docstring), from `train.embed`'s output."""
    i, j = pair
    z = embeddings["z"]
    if scorer == "fused":
        fused = embeddings["fused"]
        if pair not in fused:
            raise ValueError(f"scorer 'fused' needs the fusion MLP of {pair}; this model has {list(fused) or 'none'} "
                             "(Symile builds none): use scorer 'sum' or 'product'")
        return fused[pair]
    if scorer == "sum":
        return z[i] + z[j]
    if scorer == "product":
        return z[i] * z[j]
    raise ValueError(f"unknown scorer {scorer!r}; expected one of {list(SCORERS)}")


def top_k_classes(query: torch.Tensor, classes: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k) indices of the k best-scoring rows of `classes` (C, d) for each query (N, d)."""
    return (query @ classes.T).topk(min(k, len(classes)), dim=1).indices


def zero_shot_accuracy(query: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of queries whose label is among the k best-scoring classes; `classes` row c is class c."""
    if query.shape[1] != classes.shape[1]:
        raise ValueError(f"zero_shot_accuracy: queries of width {query.shape[1]}, classes of width {classes.shape[1]}; "
                         "both must be embeddings of one space")
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"zero_shot_accuracy: labels outside 0..{len(classes) - 1} (one class embedding per label)")
    hits = (top_k_classes(query, classes, k) == labels[:, None]).any(1)
    return float(hits.float().mean())


def retrieval_at_k(query: torch.Tensor, gallery: torch.Tensor, query_labels: torch.Tensor,
                   gallery_labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Category-level recall at k (module docstring): {k: share of queries with an item of their
    class among their k best-scoring gallery items}."""
    if len(gallery) != len(gallery_labels) or len(query) != len(query_labels):
        raise ValueError("retrieval_at_k: one label per query and per gallery item expected; got "
                         f"{len(query)} queries / {len(query_labels)} labels, {len(gallery)} items / "
                         f"{len(gallery_labels)} labels")
    order = (query @ gallery.T).topk(min(max(ks), len(gallery)), dim=1).indices
    same = gallery_labels[order] == query_labels[:, None]
    return {k: float(same[:, :k].any(1).float().mean()) for k in ks}


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                 max_iter: int = 500, seed: int = 0) -> float:
    """Test accuracy of a logistic regression fitted on frozen training embeddings."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    probe.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y))
    return float(probe.score(np.asarray(test_x, dtype=np.float64), np.asarray(test_y)))
