"""The formulas behind the figures pretraining and pruning report, each written once.

FLOPs per token count the matrix multiplications that run for each token (Kaplan et al. 2020;
PaLM appendix B): 2N per token forward and 6N for training for N matmul parameters, plus
attention over a context of T tokens: 4·L·T·d_attn forward and 12·L·T·d_attn for training.
Callers choose N and d_attn (the engine: every parameter and the hidden size; pruning
accounting: the decoder projections + LM head and heads × head_dim).
"""

from __future__ import annotations

import math


def flops_per_token(
    matmul_parameters: int, num_layers: int, attention_width: int, seq_len: int, training: bool = True
) -> float:
    attention = num_layers * seq_len * attention_width
    return 6.0 * matmul_parameters + 12.0 * attention if training else 2.0 * matmul_parameters + 4.0 * attention


def perplexity(loss: float | None) -> float | None:
    return None if loss is None else math.exp(min(loss, 50.0))  # capped: an untrained model's loss overflows exp


def count_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
