"""Muon for the hidden matrices, AdamW for the rest: the parameter split and one optimizer over both.

Muon (Jordan et al. 2024; `torch.optim.Muon`) orthogonalises each update of a 2-D weight
matrix. It is meant for the matrices inside the network only: embeddings, the LM head (tied to
the embeddings here) and every 1-D parameter (norm gains, biases) stay with AdamW, as in the
modded-nanogpt speedruns and Moonshot's Muon-at-scale recipe. With `adjust_lr_fn=
"match_rms_adamw"` Muon's update has AdamW's RMS, so both share one learning rate and one schedule.
"""

from __future__ import annotations

import torch

from pretrain.precision import cpu_flags


def split_parameters(model) -> tuple[list, list, list]:
    """(Muon: 2-D hidden matrices, AdamW with decay: embeddings/head, AdamW without decay: 1-D)."""
    outer = set()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None and getattr(module, "weight", None) is not None:
            outer.add(id(module.weight))
    muon, decayed, plain, seen = [], [], [], set()
    for parameter in model.parameters():  # tied weights appear once
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        if parameter.ndim < 2:
            plain.append(parameter)
        elif parameter.ndim == 2 and id(parameter) not in outer:
            muon.append(parameter)
        else:
            decayed.append(parameter)
    return muon, decayed, plain


def _native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


class Muon(torch.optim.Muon):
    """`torch.optim.Muon` whose Newton-Schulz iteration runs in fp32 where bf16 is emulated.

    torch 2.13 always orthogonalises in bf16. On a CPU without AMX/AVX512-BF16 those matmuls are
    emulated and cost more than the whole forward/backward pass (a ~5M model: ~26 s per step against
    ~2 s for the rest); in fp32 they are ordinary BLAS calls. Where bf16 is native, torch's own step runs.
    """

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"]]
        if params and _native_bf16(params[0].device):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param.grad)
                buffer = state["momentum_buffer"]
                buffer.lerp_(param.grad, 1 - momentum)
                update = param.grad.lerp(buffer, momentum) if group["nesterov"] else buffer
                update = newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
                param.mul_(1 - lr * decay)
                param.add_(update.to(param.dtype), alpha=-lr * lr_scale(group["adjust_lr_fn"], param.shape))
        return loss


def newton_schulz(matrix: torch.Tensor, coefficients, steps: int, eps: float) -> torch.Tensor:
    """The quintic iteration of torch.optim.Muon (same coefficients), in fp32."""
    a, b, c = coefficients
    x = matrix.float()
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if transposed else x


def lr_scale(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    rows, columns = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * max(rows, columns) ** 0.5
    if adjust_lr_fn in (None, "original"):
        return max(1.0, rows / columns) ** 0.5
    return 1.0


def newton_schulz_flops(shape: torch.Size, steps: int = 5) -> float:
    """Matmul FLOPs of one orthogonalisation of an m×n matrix (m <= n): per step X·Xᵀ, A·A, B·X."""
    m, n = sorted(shape[:2])
    return steps * (2.0 * m * m * n + 2.0 * m**3 + 2.0 * m * m * n)


class MuonWithAdamW(torch.optim.Optimizer):
    """One optimizer object over two: Muon for the hidden matrices, AdamW for the rest.

    The Trainer, accelerate and the LR schedulers expect one `Optimizer`; this one shares the two
    inner optimizers' param groups and state, so a scheduler scales both, structured pruning
    slices both states (pretrain/sparsity/structured.py), and checkpoints hold both.
    """

    def __init__(self, model, lr: float, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8, fused=None):
        hidden, decayed, plain = split_parameters(model)
        if not hidden:
            raise ValueError("optimizer muon: the model has no 2-D hidden matrices")
        self.muon = Muon(hidden, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
        groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
        groups = [group for group in groups if group["params"]]
        self.adamw = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused)
        # no Optimizer.__init__: the groups and state below are the inner optimizers' own objects
        self.defaults = dict(self.adamw.defaults)
        self.param_groups = self.muon.param_groups + self.adamw.param_groups
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}
        self._optimizer_state_dict_pre_hooks = {}
        self._optimizer_state_dict_post_hooks = {}
        self._optimizer_load_state_dict_pre_hooks = {}
        self._optimizer_load_state_dict_post_hooks = {}
        self._zero_grad_profile_name = "Optimizer.zero_grad#MuonWithAdamW.zero_grad"

    @property
    def state(self):  # read by pruning (state.get(param)); each parameter lives in exactly one inner optimizer
        return _MergedState(self.muon.state, self.adamw.state)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True):
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self):
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict):
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])

    def newton_schulz_flops(self) -> float:
        """The optimizer's own matmul FLOPs per step (the orthogonalisations), at the current shapes."""
        return sum(newton_schulz_flops(p.shape) for group in self.muon.param_groups for p in group["params"])


class _MergedState(dict):
    def __init__(self, *parts):
        super().__init__()
        for part in parts:
            self.update(part)


def build_optimizer(name: str, model, lr: float, weight_decay: float, betas=(0.9, 0.95)):
    """`adamw` (decay on matrices, none on 1-D parameters, as the Trainer groups them) or `muon`."""
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    if name == "muon":
        return MuonWithAdamW(model, lr, weight_decay, betas, fused=fused)
    if name != "adamw":
        raise ValueError(f"optimizer: {name!r} is not adamw or muon")
    decayed = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    plain = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
