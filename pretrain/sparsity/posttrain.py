"""Post-training pruning of a saved model: magnitude or Wanda, unstructured or 2:4.

* magnitude: zero the smallest |W| of each layer (the classic baseline).
* Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs"): score each
  weight by |W_ij| · ‖X_j‖₂, the input feature's L2 norm over calibration tokens, and zero the
  lowest scores within each output row. Layers are pruned in order, each calibrated on the
  activations of the already-pruned layers below it, as in the paper's reference code.
  The per-row comparison is what makes Wanda work on LLMs; on small, lightly trained models,
  whose rows differ much in importance, comparing over the whole matrix (`wanda_group="layer"`)
  sometimes loses less (benchmarks/pruning.py measures both).
* 2:4 (`structured=True`): in every group of four consecutive inputs of a row keep the two best
  scores, the pattern sparse tensor cores run at up to twice the speed. The weights are saved
  dense (any runtime reads them); `to_sparse_semi_structured` runs them on CUDA GPUs of compute
  capability 8.0 and newer.

Embeddings and the LM head are left dense, as in the papers.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from pretrain.errors import ConfigError
from pretrain.figures import perplexity
from pretrain.sparsity.accounting import compare_inference_speed, measure_inference_tokens_per_second, model_figures
from pretrain.sparsity.architectures import check_supported, decoder_layers, decoder_linears
from pretrain.sparsity.config import PostTrainingArguments
from pretrain.sparsity.evaluation import evaluate_loss

log = logging.getLogger("pretrain")


def _prune_by_score(weight: torch.Tensor, score: torch.Tensor, sparsity: float, per_row: bool, two_four: bool) -> None:
    """Zero the lowest-scoring entries of `weight` in place."""
    if two_four:
        rows, cols = score.shape
        if cols % 4:
            raise ConfigError(f"2:4 sparsity needs input sizes divisible by 4, got a layer with {cols}")
        groups = score.view(rows, cols // 4, 4)
        lowest = torch.topk(groups, 2, dim=-1, largest=False).indices
        drop = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, lowest, True).view(rows, cols)
    elif per_row:
        count = int(score.shape[1] * sparsity)
        drop = torch.zeros_like(score, dtype=torch.bool)
        if count:
            drop.scatter_(1, torch.topk(score, count, dim=1, largest=False).indices, True)
    else:
        count = int(score.numel() * sparsity)
        drop = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
        if count:
            drop[torch.topk(score.flatten(), count, largest=False).indices] = True
        drop = drop.view_as(score)
    weight.masked_fill_(drop, 0.0)


@torch.no_grad()
def prune_magnitude(model, sparsity: float, two_four: bool = False) -> None:
    check_supported(model)
    for _, linear in decoder_linears(model):
        _prune_by_score(
            linear.weight.data, linear.weight.detach().abs().float(), sparsity, per_row=False, two_four=two_four
        )


class _StopForward(Exception):
    """Raised at the first decoder layer: only the inputs it receives are needed."""


@torch.no_grad()
def first_layer_inputs(model, blocks: torch.Tensor, batch_size: int = 8) -> list[tuple[tuple, dict]]:
    """The (args, kwargs) the first decoder layer is called with, one pair per calibration batch.

    Embeddings, rotary position embeddings and the causal mask are computed once here; every
    layer is then run on its own, so calibrating L layers costs L layer passes, not L model
    prefixes. No KV cache: a layer is run more than once on the same inputs.
    """
    captured: list[tuple[tuple, dict]] = []

    def grab(module, args, kwargs):
        captured.append((args, kwargs))
        raise _StopForward

    hook = decoder_layers(model)[0].register_forward_pre_hook(grab, with_kwargs=True)
    device = next(model.parameters()).device
    try:
        for start in range(0, len(blocks), batch_size):
            try:
                model(input_ids=blocks[start : start + batch_size].to(device), use_cache=False)
            except _StopForward:
                pass
    finally:
        hook.remove()
    return captured


@torch.no_grad()
def layer_input_norms(layer, inputs: list[tuple[tuple, dict]]) -> dict[str, torch.Tensor]:
    """‖X_j‖₂ over all calibration tokens, for each input feature of each projection in `layer`."""
    squares: dict[str, torch.Tensor] = {}
    hooks = []
    for part in ("self_attn", "mlp"):
        for name, module in getattr(layer, part).named_children():
            if isinstance(module, torch.nn.Linear):

                def record(mod, module_inputs, key=f"{part}.{name}"):
                    x = module_inputs[0].detach().float().reshape(-1, module_inputs[0].shape[-1])
                    squares[key] = squares.get(key, 0) + x.pow(2).sum(0)

                hooks.append(module.register_forward_pre_hook(record))
    try:
        for args, kwargs in inputs:
            layer(*args, **kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return {key: value.sqrt() for key, value in squares.items()}


@torch.no_grad()
def prune_wanda(model, calibration: torch.Tensor, sparsity: float, two_four: bool = False, group: str = "row") -> None:
    """Wanda; `group` = row (the paper's per-output comparison) or layer (the whole matrix).

    Each layer is calibrated on the outputs of the already-pruned layers below it.
    """
    from tqdm.auto import tqdm

    check_supported(model)
    was_training = model.training
    model.eval()
    try:
        inputs = first_layer_inputs(model, calibration)
        for layer in tqdm(decoder_layers(model), desc="wanda", unit="layer"):
            norms = layer_input_norms(layer, inputs)
            for part in ("self_attn", "mlp"):
                for name, linear in getattr(layer, part).named_children():
                    if not isinstance(linear, torch.nn.Linear):
                        continue
                    norm = norms[f"{part}.{name}"].to(linear.weight.device)
                    score = linear.weight.detach().abs().float() * norm[None, :]
                    _prune_by_score(linear.weight.data, score, sparsity, per_row=group == "row", two_four=two_four)
            # the next layer's inputs: this layer's outputs, now that it is pruned
            inputs = [((layer(*args, **kwargs), *args[1:]), kwargs) for args, kwargs in inputs]
    finally:
        model.train(was_training)


def semi_structured_support() -> tuple[bool, str]:
    """Can this machine run 2:4 sparse kernels (`to_sparse_semi_structured`)? And a sentence why."""
    if not torch.cuda.is_available():
        return False, (
            "2:4 semi-structured kernels (torch.sparse.to_sparse_semi_structured) need a CUDA GPU of compute "
            "capability 8.0 or newer; this machine has no CUDA GPU, so the 2:4 weights are stored dense and run "
            "at dense speed here (a GPU with sparse tensor cores runs them faster)"
        )
    major, minor = torch.cuda.get_device_capability()
    name = torch.cuda.get_device_name()
    if major < 8:
        return False, (
            f"2:4 semi-structured kernels need compute capability 8.0 or newer; {name} has {major}.{minor}, "
            "so the 2:4 weights run at dense speed on it"
        )
    return True, f"{name} (compute capability {major}.{minor}) runs 2:4 semi-structured kernels"


def to_semi_structured(model) -> tuple[int, int]:
    """Swap 2:4 decoder weights for SparseSemiStructuredTensor (CUDA, fp16/bf16); returns (converted, skipped)."""
    from torch.sparse import to_sparse_semi_structured

    converted = skipped = 0
    for _, linear in decoder_linears(model):
        weight = linear.weight.detach()
        try:
            sparse = to_sparse_semi_structured(weight.contiguous())
        except RuntimeError as exc:  # shapes below the kernel's minimum tile stay dense
            log.info("kept dense: %s", str(exc).splitlines()[0])
            skipped += 1
            continue
        linear.weight = torch.nn.Parameter(sparse, requires_grad=False)
        converted += 1
    return converted, skipped


def _timed_inference(model, batch: int, seq_len: int) -> float:
    return measure_inference_tokens_per_second(model, batch, seq_len, repeats=5, warmup=2)


def prune_saved_model(
    model, calibration: torch.Tensor, evaluation: torch.Tensor, args: PostTrainingArguments, measure_speed: bool = True
) -> dict:
    """Prune `model` in place and measure it before and after; returns the figures.

    Unstructured zeros run at dense speed on dense kernels; the measured tokens/s say so.
    """
    import copy

    check_supported(model)
    seq_len = evaluation.shape[1]
    before = model_figures(model, seq_len)
    loss_before = evaluate_loss(model, evaluation)
    original = copy.deepcopy(model) if measure_speed else None  # timed against the pruned one, in turns
    started = time.perf_counter()
    if args.method == "wanda":
        prune_wanda(model, calibration, args.sparsity, two_four=args.structured, group=args.wanda_group)
    else:
        prune_magnitude(model, args.sparsity, two_four=args.structured)
    seconds = time.perf_counter() - started
    after = model_figures(model, seq_len)
    loss_after = evaluate_loss(model, evaluation)
    speed_before = speed_after = None
    if original is not None:
        speed_before, speed_after, _ = compare_inference_speed(original, model, 8, seq_len, rounds=3)
        del original
    zeros = total = 0
    for _, linear in decoder_linears(model):
        total += linear.weight.numel()
        zeros += int((linear.weight == 0).sum())
    figures = {
        "method": args.method,
        "wanda_group": args.wanda_group if args.method == "wanda" else None,
        "pattern": "2:4" if args.structured else "unstructured",
        "sparsity_target": args.sparsity,
        "decoder_sparsity": zeros / total,
        "pruning_seconds": round(seconds, 3),
        "calibration_blocks": len(calibration) if args.method == "wanda" else 0,
        "evaluation_blocks": len(evaluation),
        "block_size": seq_len,
        "parameters": before["parameters"],
        "nonzero_parameters_before": before["parameters"],
        "nonzero_parameters_after": before["parameters"] - zeros,
        "inference_flops_per_token": before["inference_flops_per_token"],
        "sparse_inference_flops_per_token_after": after["sparse_inference_flops_per_token"],
        "eval_loss_before": loss_before,
        "eval_loss_after": loss_after,
        "perplexity_before": perplexity(loss_before),
        "perplexity_after": perplexity(loss_after),
        "perplexity_increase": perplexity(loss_after) / perplexity(loss_before) - 1.0,
        "inference_tokens_per_second_before": speed_before,
        "inference_tokens_per_second_after": speed_after,
    }
    if args.structured:
        supported, message = semi_structured_support()
        figures["semi_structured_kernels"] = message
        if supported:
            figures.update(_semi_structured_speed(model, seq_len))
    return figures


def _semi_structured_speed(model, seq_len: int) -> dict:
    """Measured fp16 inference with dense vs 2:4 kernels, on a copy (the saved weights stay dense)."""
    import copy

    dense = copy.deepcopy(model).to("cuda", torch.float16)
    sparse = copy.deepcopy(dense)
    converted, skipped = to_semi_structured(sparse)
    dense_speed = _timed_inference(dense, 32, seq_len)
    sparse_speed = _timed_inference(sparse, 32, seq_len)
    return {
        "semi_structured_layers": converted,
        "semi_structured_layers_kept_dense": skipped,
        "cuda_fp16_tokens_per_second_dense": dense_speed,
        "cuda_fp16_tokens_per_second_2to4": sparse_speed,
        "cuda_2to4_speedup": sparse_speed / dense_speed,
    }


def save_pruned(model, tokenizer, out_dir: str | Path) -> Path:
    """save_pretrained (safetensors) + tokenizer, into a temp dir renamed into place."""
    import shutil

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir
