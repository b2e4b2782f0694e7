"""Which numeric precision to train in, and why: `auto` decides from what the hardware runs fast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pretrain.errors import ConfigError


@dataclass(frozen=True)
class PrecisionChoice:
    dtype_name: str  # "bf16" | "fp16" | "fp32"
    device_type: str  # "cuda" | "cpu"
    reason: str

    @property
    def autocast_dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.dtype_name)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_precision(requested: str) -> PrecisionChoice:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        bf16_ok = torch.cuda.is_bf16_supported()
        if requested == "auto":
            if bf16_ok:
                return PrecisionChoice(
                    "bf16", "cuda", f"{name} supports bf16: autocast to bf16, no loss scaling needed"
                )
            return PrecisionChoice("fp16", "cuda", f"{name} lacks bf16: fp16 autocast with dynamic loss scaling")
        if requested == "bf16" and not bf16_ok:
            raise ConfigError(f"precision: bf16 requested but {name} does not support it; use fp16 or auto")
        return PrecisionChoice(requested, "cuda", f"requested {requested} on {name}")

    flags = cpu_flags()
    native_bf16 = sorted(flags & {"amx_bf16", "avx512_bf16"})
    if requested == "auto":
        if native_bf16:
            return PrecisionChoice(
                "bf16", "cpu", f"CPU has {'/'.join(native_bf16)}: bf16 autocast runs faster than fp32"
            )
        return PrecisionChoice("fp32", "cpu", "CPU has no native bf16 (amx_bf16/avx512_bf16): fp32 is fastest here")
    if requested == "fp16":
        raise ConfigError("precision: fp16 needs a CUDA GPU (loss scaling); on CPU use bf16, fp32 or auto")
    reason = f"requested {requested}"
    if requested == "bf16" and not native_bf16:
        reason += " (this CPU emulates bf16: expect it to be slower than fp32)"
    return PrecisionChoice(requested, "cpu", reason)
