"""Evaluating aligned embeddings: two-to-one scores, zero-shot classification, retrieval, probes.

Every evaluation ranks a gallery by a score matrix (N queries x G gallery items):
- one-to-one, modality i -> k:         z_i · z_k                                   (every method)
- two-to-one, pair (i, j) -> k, by scorer
    "fused"    ConFu's fused embedding:  f_ij · z_k               (ConFu's own)
    "sum"      the two pairwise scores:  (z_i + z_j) · z_k = z_i·z_k + z_j·z_k   (pairwise's own)
    "product"  Symile's MIP:             (z_i ⊙ z_j) · z_k = MIP(z_i, z_j, z_k)  (Symile's own)
    "volume"   GRAM's:                   −Vol(z_k, z_i, z_j), the Gram volume     (GRAM's own)
`NATIVE_SCORER` gives each method the scorer its objective trains; "sum" is defined for all four.
The first three are dot products with a query vector (`two_to_one_query`); GRAM's volume is not,
so it has no query vector (and no "native" linear probe).

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

from mcrlib.losses.higher_order import gram_volume

SCORERS = ("fused", "sum", "product", "volume")
VECTOR_SCORERS = ("fused", "sum", "product")          # a dot product with a query vector
NATIVE_SCORER = {"confu": "fused", "pairwise": "sum", "symile": "product", "gram": "volume"}


def two_to_one_query(embeddings: dict, pair: tuple[str, str], scorer: str) -> torch.Tensor:
    """(N, d) query vectors of pair (i, j) for a dot-product `scorer` (module docstring), from
    `train.embed`'s output."""
    i, j = pair
    z = embeddings["z"]
    if scorer == "fused":
        fused = embeddings["fused"]
        if pair not in fused:
            raise ValueError(f"scorer 'fused' needs the fusion MLP of {pair}; this model has {list(fused) or 'none'} "
                             "(Symile and GRAM build none): use scorer 'sum' or 'product'")
        return fused[pair]
    if scorer == "sum":
        return z[i] + z[j]
    if scorer == "product":
        return z[i] * z[j]
    if scorer == "volume":
        raise ValueError("scorer 'volume' (GRAM) scores with a Gram volume, not a query vector: use two_to_one_scores")
    raise ValueError(f"unknown scorer {scorer!r}; expected one of {list(SCORERS)}")


def dot_scores(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """(N, G) dot products of queries (N, d) with gallery embeddings (G, d)."""
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries of width {query.shape[1]}, gallery of width {gallery.shape[1]}; both must be "
                         "embeddings of one space")
    return query @ gallery.T


def two_to_one_scores(embeddings: dict, pair: tuple[str, str], gallery: torch.Tensor, scorer: str, *,
                      chunk: int = 512) -> torch.Tensor:
    """(N, G) scores of pair (i, j)'s N queries against the gallery (G, d) by `scorer` (module
    docstring); GRAM's volumes are computed `chunk` queries at a time (a 3x3 Gram per entry)."""
    if scorer != "volume":
        return dot_scores(two_to_one_query(embeddings, pair, scorer), gallery)
    z_i, z_j = (embeddings["z"][m] for m in pair)
    return torch.cat([-gram_volume(gallery, z_i[s:s + chunk], z_j[s:s + chunk]).T
                      for s in range(0, len(z_i), chunk)])


def zero_shot_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of queries whose label is among their k best-scoring classes; `scores` (N, C), column
    c the score of class c (its caption)."""
    if labels.numel() and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"zero_shot_accuracy: labels outside 0..{scores.shape[1] - 1} (one class embedding per label)")
    hits = (scores.topk(min(k, scores.shape[1]), dim=1).indices == labels[:, None]).any(1)
    return float(hits.float().mean())


def retrieval_at_k(scores: torch.Tensor, query_labels: torch.Tensor, gallery_labels: torch.Tensor,
                   ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Category-level recall at k (module docstring) from `scores` (N queries, G gallery items):
    {k: share of queries with an item of their class among their k best-scoring gallery items}."""
    if scores.shape != (len(query_labels), len(gallery_labels)):
        raise ValueError(f"retrieval_at_k: scores of shape {tuple(scores.shape)}; expected one row per query label "
                         f"({len(query_labels)}) and one column per gallery label ({len(gallery_labels)})")
    order = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    same = gallery_labels[order] == query_labels[:, None]
    return {k: float(same[:, :k].any(1).float().mean()) for k in ks}


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                 max_iter: int = 500, seed: int = 0) -> float:
    """Test accuracy of a logistic regression fitted on frozen training embeddings."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    probe.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y))
    return float(probe.score(np.asarray(test_x, dtype=np.float64), np.asarray(test_y)))
