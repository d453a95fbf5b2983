"""ConFu as its own method family: self-supervised contrastive alignment of three modalities.

Koutoupis et al., "The More, the Merrier: Contrastive Fusion for Higher-Order Multimodal
Alignment" (arXiv 2511.21331, CVPR 2026; code estafons/confu). Not MCR's `contrastive_terms:
fused` option (docs/methods.md says how the two differ).

- `model`: encoders, projections, pair-fusion MLPs; ConFu, its pairwise baseline (λ = 0), Symile;
- `text_encoder`: captions of digits and a small GRU caption encoder trained from scratch;
- `train`: AdamW and a cosine schedule, fixed epochs; `embed`;
- `evaluate`: two-to-one scorers, zero-shot accuracy, category-level retrieval, linear probes;
- `experiment`: `run_avdigits`, `run_xor`, `paired_table` (notebooks/07_confu.py, stage `confu`).

Nothing here is imported by the supervised methods or the run cache (mcrlib.runs): adding this
family changes no run's key.
"""
