"""When to prune and how much: the Zhu & Gupta cubic schedule, for masks and for whole heads/neurons.

Zhu & Gupta (2017), "To prune, or not to prune": s_t = s_f · (1 − (1 − (t − t0)/(t1 − t0))³)
for t in [t0, t1]. Pruning is fast early, while the network can still recover, and slows down
as the target nears.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pretrain.errors import ConfigError
from pretrain.sparsity.architectures import decoder_shape
from pretrain.sparsity.config import SparsityArguments
from pretrain.sparsity.structured import valid_head_counts


def cubic_sparsity(step: int, start_step: int, end_step: int, final: float, initial: float = 0.0) -> float:
    if step < start_step:
        return initial if step >= 0 else 0.0
    if step >= end_step or end_step <= start_step:
        return final
    progress = (step - start_step) / (end_step - start_step)
    return final + (initial - final) * (1.0 - progress) ** 3


def step_at(fraction: float, max_steps: int) -> int:
    return min(max(1, round(fraction * max_steps)), max_steps)


@dataclass(frozen=True)
class PruneEvent:
    step: int
    heads: int  # heads per layer after this event
    neurons: int  # MLP neurons per layer after this event

    def as_dict(self) -> dict[str, int]:
        return {"step": self.step, "heads": self.heads, "neurons": self.neurons}


def _nearest(valid: list[int], wanted: int) -> int:
    # ties go to the larger count: prune a little less rather than more than asked
    return min(valid, key=lambda n: (abs(n - wanted), -n))


def _neurons_left(total: int, fraction: float, multiple: int) -> int:
    wanted = total - math.floor(total * fraction)
    if total <= multiple:
        return max(1, wanted)
    return min(total, max(multiple, multiple * round(wanted / multiple)))


def check_prunable(args: SparsityArguments, config) -> None:
    """Over-pruning that depends on the model's sizes: one line naming the field."""
    shape = decoder_shape(config)
    if args.prune_heads > 0:
        smallest = shape.num_kv_heads if shape.num_kv_heads != shape.num_heads else 1
        if shape.num_heads <= smallest:
            raise ConfigError(
                f"prune_heads: the model has {shape.num_heads} attention head(s) per layer "
                f"({shape.num_kv_heads} key/value); pruning any would leave less than one head per group"
            )
    if args.prune_neurons > 0 and shape.intermediate_size <= 1:
        raise ConfigError("prune_neurons: the model has one MLP neuron per layer; nothing can be pruned")
    if (
        args.prune_neurons > 0
        and shape.intermediate_size - math.floor(shape.intermediate_size * args.prune_neurons) < 1
    ):
        raise ConfigError(f"prune_neurons: {args.prune_neurons} would leave no MLP neuron per layer")


def structured_plan(args: SparsityArguments, config, max_steps: int) -> list[PruneEvent]:
    """The pruning events of a run of `max_steps`, each one shrinking something.

    Targets follow the cubic schedule across events; head counts are snapped to ones the
    config class accepts, neuron counts to multiples of `neuron_multiple`.
    """
    check_prunable(args, config)
    shape = decoder_shape(config)
    valid_heads = valid_head_counts(config) or [shape.num_heads]
    first, last = step_at(args.prune_start, max_steps), step_at(args.prune_end, max_steps)
    count = args.prune_events
    events: list[PruneEvent] = []
    heads, neurons = shape.num_heads, shape.intermediate_size
    for k in range(1, count + 1):
        step = first if count == 1 else round(first + (last - first) * (k - 1) / (count - 1))
        step = max(1, min(step, max_steps))
        progress = k / count
        cubic = 1.0 - (1.0 - progress) ** 3
        wanted_heads = shape.num_heads - math.floor(shape.num_heads * args.prune_heads * cubic)
        target_heads = min(heads, _nearest(valid_heads, wanted_heads))
        target_neurons = min(
            neurons, _neurons_left(shape.intermediate_size, args.prune_neurons * cubic, args.neuron_multiple)
        )
        if (target_heads, target_neurons) == (heads, neurons):
            continue
        if events and events[-1].step == step:
            events.pop()  # two events on one step: the later target wins
        events.append(PruneEvent(step, target_heads, target_neurons))
        heads, neurons = target_heads, target_neurons
    return events
