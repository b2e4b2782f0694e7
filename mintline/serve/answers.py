"""Public answers: what a detection or a verification result may tell a caller.

Coarse (the default): per key a verdict, the number of tokens scored, and the p-value as a
range (`P_VALUE_EDGES`); the text's marked spans as character ranges. A stealing attack gets a
few bits per query instead of a real number. Full (`--detail full`): the exact p-values and
z-scores as well, and each span's figures. Never, in either: the key's secret, its green lists,
green counts, or which token was green or red.
"""

from __future__ import annotations

import math

P_VALUE_EDGES = (1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 5e-2, 1.0)


def p_value_range(p_value: float) -> tuple[float, float]:
    """The bucket [low, high) of P_VALUE_EDGES holding p (the last bucket is [0.05, 1])."""
    low = 0.0
    for edge in P_VALUE_EDGES:
        if p_value < edge or edge == 1.0:
            return low, edge
        low = edge
    return low, 1.0


def p_value_label(p_value: float) -> str:
    low, high = p_value_range(p_value)
    if low == 0.0:
        return f"< {high:g}"
    if high == 1.0:
        return f">= {low:g}"
    return f"{low:g} to {high:g}"


def _verdict(watermarked: bool | None) -> str:
    from watermark.detect import VERDICTS

    return VERDICTS[watermarked]


def _p_fields(p_value: float, full: bool) -> dict:
    low, high = p_value_range(p_value)
    fields = {"p_value_range": [low, high], "p_value_label": p_value_label(p_value)}
    if full:
        fields["p_value"] = p_value
    return fields


def detection_answer(result, config, full: bool) -> dict:
    """The answer for one text from a DetectionResult of all published keys."""
    per_key = result.per_key or [
        {
            "key_id": result.key_id,
            "scheme": result.scheme,
            "num_tokens_scored": result.num_tokens_scored,
            "z_score": result.z_score,
            "p_value_corrected": result.p_value,
        }
    ]
    keys = []
    for score in per_key:
        p_value = score["p_value_corrected"]
        # each key's verdict uses its p-value corrected for all keys, as the attributed one does
        watermarked = None if score["num_tokens_scored"] < config.min_tokens else bool(p_value <= config.fpr)
        entry = {
            "key_id": score["key_id"],
            "scheme": score["scheme"],
            "verdict": _verdict(watermarked),
            "watermarked": watermarked,
            "tokens_scored": score["num_tokens_scored"],
            **_p_fields(p_value, full),
        }
        if full:
            entry["z_score"] = _finite(score["z_score"])
        keys.append(entry)
    answer = {
        "verdict": result.verdict,
        "watermarked": result.watermarked,
        "key_id": result.key_id if result.watermarked else None,
        "tokens": result.num_tokens,
        "tokens_scored": result.num_tokens_scored,
        "min_tokens": config.min_tokens,
        "fpr": config.fpr,
        "detail": "full" if full else "coarse",
        **_p_fields(result.p_value, full),
        "spans": [_span(span, full) for span in result.spans if "start_char" in span],
        "keys": keys,
    }
    if full:
        answer["z_score"] = _finite(result.z_score)
        if result.window_p_value is not None:
            answer["window_p_value"] = result.window_p_value
    return answer


def _span(span: dict, full: bool) -> dict:
    item = {"start_char": span["start_char"], "end_char": span["end_char"]}
    if full:
        item.update(tokens_scored=span["num_tokens_scored"], z_score=_finite(span["z_score"]), p_value=span["p_value"])
    return item


def _finite(value: float) -> float | None:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def verification_answer(check) -> dict:
    """The answer for one bundle: the CLI's verdict and reasons, the signer, the card's summary."""
    result, figures = check.result, check.result.figures or {}
    return {
        "verified": bool(result.ok),
        "verdict": "verified" if result.ok else "not verified",
        "reasons": list(result.reasons),
        "signer_fingerprint": check.signer.fingerprint if check.signer else None,
        "signer_algorithm": check.signer.algorithm if check.signer else None,
        "model_name": figures.get("model_name"),
        "manifest_digest": figures.get("manifest_digest"),
        "files": figures.get("files_in_manifest"),
        "bytes": figures.get("bytes_hashed"),
        "base_manifest_digest_recorded": figures.get("base_manifest_digest_recorded"),
        "model_card": check.card,
    }
