"""A small decoder-only transformer and its synthetic task, modular addition (no download).

The task: the sequence (a, b, =) of tokens 0..p-1 and p ('='), the target (a + b) mod p, read
at the last position; the data set is every pair (p^2 of them), split by a seeded permutation.
The model: token and position embeddings, `depth` pre-LayerNorm blocks of causal softmax
self-attention (4 heads) and a GELU MLP (4x width), a final LayerNorm and a linear read-out.
Written out with plain tensor operations (no `nn.MultiheadAttention` fast path), so torch.func
Hessian-vector products go through every layer.
"""

import math

import torch
from torch import nn

HEADS = 4


class Block(nn.Module):
    """A pre-norm transformer block: causal multi-head self-attention and a GELU MLP."""

    def __init__(self, width: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The block applied to hidden states h (N, T, width)."""
        n, t, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(n, t, 3, HEADS, w // HEADS).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(w // HEADS)
        causal = torch.ones(t, t, dtype=torch.bool, device=h.device).tril()
        attention = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        h = h + self.proj((attention @ v).transpose(1, 2).reshape(n, t, w))
        return h + self.mlp(self.norm2(h))


class Transformer(nn.Module):
    """Decoder-only transformer: (N, T) token ids -> (N, classes) logits at the last position."""

    def __init__(self, vocab: int, length: int, n_classes: int, depth: int = 2, width: int = 64):
        super().__init__()
        if width % HEADS:
            raise ValueError(f"transformer width must be a multiple of {HEADS}, got {width}")
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(length, width) * 0.02)
        self.blocks = nn.Sequential(*(Block(width) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits (N, vocabulary) of token sequences (N, T)."""
        h = self.embed(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(h))[:, -1])


def modular_addition(p: int = 23, train_fraction: float = 0.5, seed: int = 0) -> dict:
    """{'train': (x, y), 'test': (x, y), 'classes': p}: x (N, 3) int64 tokens (a, b, p), y (N,)."""
    if not (isinstance(p, int) and p >= 2):
        raise ValueError(f"the modulus must be an integer >= 2, got {p}")
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.reshape(-1), b.reshape(-1), torch.full((p * p,), p)], dim=1)
    y = (x[:, 0] + x[:, 1]) % p
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    cut = int(round(train_fraction * p * p))
    return {"train": (x[order[:cut]], y[order[:cut]]), "test": (x[order[cut:]], y[order[cut:]]), "classes": p}
