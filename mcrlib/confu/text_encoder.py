"""The third modality of ConFu's AV-MNIST experiment: a caption of the digit, read by a small text
encoder trained from scratch.

ConFu (Koutoupis et al., "The More, the Merrier: Contrastive Fusion for Higher-Order Multimodal
Alignment", arXiv 2511.21331, CVPR 2026; code estafons/confu, `src/experiments/av_mnist/confu.py`)
pairs each AV-MNIST (image, audio) sample with a caption of its label, "an image of a zero", ...,
and zero-shot classifies by matching the (image, audio) embedding against the ten captions.

Deviations from the authors' code, and why:
- tokeniser: the caption's words, split on spaces, over a fixed vocabulary (`VOCABULARY`: the
  template's words and the ten digit names, plus padding and unknown); no pretrained tokenizer
  (no download here, and ten captions need none);
- encoder: a word embedding and a one-layer GRU trained from scratch, its last hidden state the
  encoding (the authors' text tower is a pretrained language model; none may be downloaded here).
"""
from __future__ import annotations

import torch
from torch import nn

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATE = "an image of a {}"
PAD, UNKNOWN = "<pad>", "<unk>"
VOCABULARY = (PAD, UNKNOWN, "an", "image", "of", "a", *DIGIT_WORDS)


def caption(label: int) -> str:
    """The caption of digit `label` (0..9): "an image of a zero", ..."""
    if not 0 <= int(label) < len(DIGIT_WORDS):
        raise ValueError(f"caption: label {label!r} is not a digit; expected an integer in 0..9")
    return TEMPLATE.format(DIGIT_WORDS[int(label)])


def tokenize(texts: list[str], *, length: int | None = None) -> torch.Tensor:
    """(len(texts), length) token ids over `VOCABULARY`: lower-cased words split on spaces, an
    unknown word as <unk>, padded on the right with <pad> (id 0) to the longest text or `length`."""
    index = {word: i for i, word in enumerate(VOCABULARY)}
    ids = [[index.get(word, index[UNKNOWN]) for word in text.lower().split()] for text in texts]
    width = max((len(row) for row in ids), default=0) if length is None else length
    if any(len(row) > width for row in ids):
        raise ValueError(f"tokenize: a text has more than length={width} words; pass a larger length or None")
    return torch.tensor([row + [0] * (width - len(row)) for row in ids], dtype=torch.long).reshape(len(ids), width)


def caption_tokens(labels: torch.Tensor) -> torch.Tensor:
    """Token ids of the captions of `labels` (a 1-D tensor of digits), one row each."""
    return tokenize([caption(int(label)) for label in labels])


class CaptionEncoder(nn.Module):
    """Token ids (B, L) -> (B, out_dim): word embedding, a one-layer GRU over the words (padding
    skipped: each caption's encoding is the hidden state after its last word), a linear map."""

    def __init__(self, *, vocab_size: int = len(VOCABULARY), embed_dim: int = 32, hidden_dim: int = 64,
                 out_dim: int = 128):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("embed_dim", embed_dim), ("hidden_dim", hidden_dim),
                            ("out_dim", out_dim)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"CaptionEncoder: {name}={value!r}; expected an integer >= 1")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, out_dim)
        self.out_dim = out_dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(f"CaptionEncoder: expected (batch, words) int64 token ids (tokenize), got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        lengths = (tokens != 0).sum(1).clamp(min=1)
        states, _ = self.gru(self.embed(tokens))
        last = states[torch.arange(len(tokens)), lengths - 1]
        return self.out(last)
