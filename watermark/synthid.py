"""SynthID-Text's Bayesian detector, trained locally (the published one is on the Hub, unreachable).

transformers' `BayesianDetectorModel` scores a text from its g-values: a learned likelihood of
g-values under the watermark against fair coins without it. It must be trained on g-values of
marked and unmarked samples from the model; this module computes them with transformers' own
`compute_g_values` / `compute_context_repetition_mask` (our processor feeds them the keyed
PRF), trains the detector with its own loss, and saves it with save_pretrained.

The detector's posterior is a score, not a p-value: `mintline watermark detect` keeps its
verdict on the exact binomial test of the g-values (a calibrated false-positive rate) and
reports the posterior beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from watermark.errors import ConfigError
from watermark.keys import WatermarkKey


def synthid_features(processor, sequences: Sequence[Sequence[int]], pad_id: int):
    """(g-values (B, L - n + 1, depth) float, mask (B, L - n + 1)) for right-padded sequences."""
    import torch

    n = processor.ngram_len
    width = max(max(len(s) for s in sequences), n)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    present = torch.zeros((len(sequences), width), dtype=torch.bool)
    for i, row in enumerate(sequences):
        ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        present[i, : len(row)] = True
    g_values = processor.compute_g_values(ids).float()
    repetition = processor.compute_context_repetition_mask(ids)
    mask = repetition.bool() & present[:, n - 1 :]
    return g_values, mask.float()


def train_bayesian_detector(
    key: WatermarkKey,
    marked: Sequence[Sequence[int]],
    unmarked: Sequence[Sequence[int]],
    pad_id: int,
    out_dir: str | Path | None = None,
    steps: int = 300,
    learning_rate: float = 1e-2,
    l2_weight: float = 1e-3,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Train transformers' BayesianDetectorModel on 3/4 of the samples; AUC on the held-out quarter."""
    import torch
    from transformers import BayesianDetectorConfig, BayesianDetectorModel

    from watermark.evaluate import roc_auc
    from watermark.processor import KeyedSynthIDLogitsProcessor

    if key.scheme != "synthid":
        raise ConfigError(f"{key.key_id}: the Bayesian detector is for synthid keys, not {key.scheme}")
    if min(len(marked), len(unmarked)) < 8:
        raise ConfigError("Bayesian detector: needs at least 8 marked and 8 unmarked samples")
    torch.manual_seed(seed)
    processor = KeyedSynthIDLogitsProcessor(key, key.vocab_size)
    g_values, mask = synthid_features(processor, list(marked) + list(unmarked), pad_id)
    labels = torch.tensor([1.0] * len(marked) + [0.0] * len(unmarked))
    order = torch.randperm(len(labels))
    held_out = order[: len(order) // 4]
    train = order[len(order) // 4 :]
    config = BayesianDetectorConfig(watermarking_depth=int(key.params["depth"]))
    config.set_detector_information(model_name=key.key_id, watermarking_config={"scheme": "synthid", **key.params})
    detector = BayesianDetectorModel(config)
    optimizer = torch.optim.Adam(detector.parameters(), lr=learning_rate)
    detector.train()
    for _ in range(steps):
        batch = train[torch.randint(0, len(train), (min(64, len(train)),))]
        _, loss = detector(g_values[batch], mask[batch], labels=labels[batch], loss_batch_weight=l2_weight)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    detector.eval()
    with torch.no_grad():
        (posterior,) = detector(g_values[held_out], mask[held_out])
    mean_score = (g_values[held_out] * mask[held_out][..., None]).sum((1, 2)) / (
        mask[held_out].sum(1)[:, None].clamp(min=1) * g_values.shape[-1]
    ).squeeze(-1)
    held_labels = labels[held_out].numpy().astype(bool)
    figures = {
        "train_samples": int(len(train)),
        "held_out_samples": int(len(held_out)),
        "auc_bayesian_posterior": roc_auc(posterior.numpy()[held_labels], posterior.numpy()[~held_labels]),
        "auc_mean_g_value": roc_auc(mean_score.numpy()[held_labels], mean_score.numpy()[~held_labels]),
    }
    if out_dir is not None:
        detector.save_pretrained(out_dir)
        figures["detector_dir"] = str(out_dir)
    return detector, figures


def bayesian_posteriors(
    detector_dir: str | Path, key: WatermarkKey, sequences: Sequence[Sequence[int]], pad_id: int
) -> np.ndarray:
    """P(watermarked | g-values) from a detector trained by `train_bayesian_detector` for this key."""
    import torch
    from transformers import BayesianDetectorModel

    from watermark.processor import KeyedSynthIDLogitsProcessor

    try:
        detector = BayesianDetectorModel.from_pretrained(detector_dir)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"synthid_detector: cannot load {detector_dir} ({str(exc).splitlines()[0]})") from None
    if detector.config.model_name != key.key_id:
        raise ConfigError(
            f"synthid_detector: {detector_dir} was trained for {detector.config.model_name}, not {key.key_id}"
        )
    processor = KeyedSynthIDLogitsProcessor(key, key.vocab_size)
    g_values, mask = synthid_features(processor, sequences, pad_id)
    with torch.no_grad():
        (posterior,) = detector.eval()(g_values, mask)
    return posterior.numpy()
