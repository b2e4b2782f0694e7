"""`SparsityArguments`: the pretrain stage's switches for dynamic pruning and sparse training.

Everything defaults to off. Schedules are given as fractions of the run's optimizer steps so
one config fits any `max_steps`. Two independent mechanisms:

* structured pruning (`prune_heads`, `prune_neurons`): at scheduled steps, remove the least
  important attention heads and MLP neurons from every layer and physically shrink the weights
  and the optimizer state, so the rest of the run (and the final model) is cheaper;
* unstructured sparse training (`sparsity`): masks through `torch.nn.utils.parametrize`, grown
  gradually by magnitude (Zhu & Gupta) or rewired by RigL's drop-and-grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Importance = Literal["taylor", "activation"]
SparsityMethod = Literal["magnitude", "rigl"]
PostTrainingMethod = Literal["magnitude", "wanda"]


@dataclass
class SparsityArguments:
    prune_heads: float = field(
        default=0.0,
        metadata={
            "help": "structured pruning: fraction of each layer's attention heads removed by the end of the "
            "schedule, in [0, 1) (0 = off). The remaining count is snapped to one that keeps the config standard "
            "(divides hidden_size; whole query heads per key/value group)"
        },
    )
    prune_neurons: float = field(
        default=0.0,
        metadata={"help": "structured pruning: fraction of each layer's MLP neurons removed, in [0, 1) (0 = off)"},
    )
    prune_start: float = field(
        default=0.1, metadata={"help": "first pruning event, as a fraction of the run's optimizer steps"}
    )
    prune_end: float = field(default=0.3, metadata={"help": "last pruning event, as a fraction of the run's steps"})
    prune_events: int = field(
        default=3,
        metadata={"help": "pruning events from prune_start to prune_end; the amount follows a cubic schedule"},
    )
    importance: Importance = field(
        default="taylor",
        metadata={
            "help": "how heads and neurons are scored: taylor (first-order |w·dL/dw| summed over the group) or "
            "activation (mean activation norm × outgoing weight norm)"
        },
    )
    importance_window: int = field(
        default=20, metadata={"help": "optimizer steps over which scores are accumulated before each pruning event"}
    )
    neuron_multiple: int = field(
        default=8,
        metadata={"help": "keep intermediate_size a multiple of this (fast kernels on every device; 1 = any size)"},
    )
    sparsity: float = field(
        default=0.0,
        metadata={
            "help": "unstructured sparse training: final fraction of zero weights in every decoder linear layer, "
            "in [0, 1) (0 = off)"
        },
    )
    sparsity_method: SparsityMethod = field(
        default="magnitude",
        metadata={
            "help": "magnitude: gradual magnitude pruning on the Zhu & Gupta cubic schedule; rigl: fixed sparsity "
            "from the start, connections dropped by magnitude and regrown by gradient (RigL)"
        },
    )
    sparsity_start: float = field(
        default=0.0, metadata={"help": "first mask update, as a fraction of the run's optimizer steps"}
    )
    sparsity_end: float = field(
        default=0.5,
        metadata={
            "help": "magnitude: the step (fraction of the run) where the final sparsity is reached; rigl: last rewiring"
        },
    )
    sparsity_every: int = field(default=50, metadata={"help": "optimizer steps between mask updates"})
    rigl_drop_fraction: float = field(
        default=0.3,
        metadata={"help": "rigl: fraction of active weights dropped and regrown per update (cosine-decayed to 0)"},
    )
    measure_throughput: bool = field(
        default=True,
        metadata={"help": "time a few forward passes of the model before and after pruning (inference tokens/s)"},
    )

    def __post_init__(self):
        for name in ("prune_heads", "prune_neurons", "sparsity"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {value}")
        # 1 - 1e-9 would pass the range check yet leave < 1 head per layer; the model check in
        # build_callbacks catches what depends on the layer sizes.
        for name in ("prune_start", "prune_end", "sparsity_start", "sparsity_end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: must be a fraction of the run in [0, 1], got {value}")
        if self.prune_start > self.prune_end:
            raise ValueError(f"prune_start: must be <= prune_end ({self.prune_end}), got {self.prune_start}")
        if self.sparsity_start > self.sparsity_end:
            raise ValueError(
                f"sparsity_start: must be <= sparsity_end ({self.sparsity_end}), got {self.sparsity_start}"
            )
        for name in ("prune_events", "importance_window", "sparsity_every", "neuron_multiple"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.rigl_drop_fraction < 1.0:
            raise ValueError(f"rigl_drop_fraction: must be in (0, 1), got {self.rigl_drop_fraction}")
        if self.importance not in ("taylor", "activation"):
            raise ValueError(f"importance: must be taylor or activation, got {self.importance!r}")
        if self.sparsity_method not in ("magnitude", "rigl"):
            raise ValueError(f"sparsity_method: must be magnitude or rigl, got {self.sparsity_method!r}")

    @property
    def structured(self) -> bool:
        return self.prune_heads > 0 or self.prune_neurons > 0

    @property
    def unstructured(self) -> bool:
        return self.sparsity > 0


@dataclass
class PostTrainingArguments:
    method: PostTrainingMethod = field(
        default="wanda", metadata={"help": "magnitude (|W| per layer) or wanda (|W|·‖X‖ per row)"}
    )
    sparsity: float = field(default=0.5, metadata={"help": "fraction of decoder weights set to zero, in [0, 1)"})
    structured: bool = field(
        default=False,
        metadata={
            "help": "2:4 semi-structured pattern: two of every four inputs of each row are zeroed (sparsity must be 0.5)"
        },
    )
    wanda_group: Literal["row", "layer"] = field(
        default="row",
        metadata={
            "help": "where Wanda compares scores: row (each output row loses the same share, as in the paper) or "
            "layer (the whole matrix, as magnitude does); which loses less depends on the model"
        },
    )
    calibration_samples: int = field(default=32, metadata={"help": "validation blocks for Wanda's activation norms"})
    evaluation_samples: int = field(default=64, metadata={"help": "other validation blocks the loss is measured on"})
    block_size: int = field(default=256, metadata={"help": "tokens per calibration/evaluation block"})
    seed: int = field(default=0, metadata={"help": "seed of the block shuffle"})

    def __post_init__(self):
        if self.method not in ("magnitude", "wanda"):
            raise ValueError(f"method: must be magnitude or wanda, got {self.method!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity: must be in [0, 1), got {self.sparsity}")
        if self.wanda_group not in ("row", "layer"):
            raise ValueError(f"wanda_group: must be row or layer, got {self.wanda_group!r}")
        if self.structured and self.sparsity != 0.5:
            raise ValueError(f"sparsity: --structured means the 2:4 pattern, exactly 0.5; got {self.sparsity}")
        for name in ("calibration_samples", "evaluation_samples", "block_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
