"""Run only the top k transformer layers of a local model on hidden states cached from the layers below.

Fine-tuning a reward model in active-learning rounds on two CPU cores is affordable only if the
frozen lower layers run once: their output for every text is cached here, and each round trains
(and re-reads the pool through) the top k layers alone. Two layouts are supported, the two the
project meets: BERT-style encoders (`model.encoder.layer`, a bidirectional mask) and Llama-style
decoders (`model.layers`, a causal mask, rotary position embeddings and a final norm).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignment.errors import UnknownEncoderError

log = logging.getLogger("alignment")


@dataclass
class TokenizedTexts:
    """Right-padded token ids of every text and, per token, whether it belongs to the scored response."""

    input_ids: np.ndarray  # (n, length)
    attention: np.ndarray  # (n, length) bool: a real token
    scored: np.ndarray  # (n, length) bool: a response token (pooled into the reward)
    token_type_ids: np.ndarray | None = None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


def has_tokenizer(directory: Path) -> bool:
    return any((directory / name).is_file() for name in TOKENIZER_FILES)


def load_backbone(model_dir: str | Path):
    """(tokenizer, base model, is_causal) of a local directory; one line of error when it cannot serve."""
    import json

    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    directory = Path(model_dir)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise UnknownEncoderError(f"reward model: {directory} has no config.json (give a local model directory)")
    if not has_tokenizer(directory):
        raise UnknownEncoderError(f"reward model: {directory} has no tokenizer (tokenizer.json or vocab.txt)")
    architectures = json.loads(config_path.read_text()).get("architectures") or []
    is_causal = any(a.endswith("ForCausalLM") for a in architectures)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if is_causal:
        model = AutoModelForCausalLM.from_pretrained(directory).model  # the decoder stack, without the LM head
    else:
        model = AutoModel.from_pretrained(directory, add_pooling_layer=False)
    return tokenizer, model.eval(), is_causal


def tokenize_pairs(
    tokenizer, prompts: list[str], responses: list[str], max_length: int, is_causal: bool
) -> TokenizedTexts:
    """Prompt and response read together, the end of the prompt kept when it is too long.

    An encoder gets BERT's text-pair input (token types tell prompt from response); a decoder reads
    prompt then response, as it generates them. Only the response's tokens are pooled.
    """
    ids, scored, types = [], [], []
    for prompt, response in zip(prompts, responses):
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id or 0]
        response_ids = response_ids[: max(1, max_length * 3 // 4)]
        if is_causal:
            room = max_length - len(response_ids)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-room:] if room > 0 else []
            if tokenizer.bos_token_id is not None:
                prompt_ids = [tokenizer.bos_token_id, *prompt_ids][-max(room, 0) :] if room > 0 else []
            row = prompt_ids + response_ids
            ids.append(row)
            scored.append([False] * len(prompt_ids) + [True] * len(response_ids))
            types.append([0] * len(row))
        else:
            cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
            room = max_length - len(response_ids) - 3
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-room:] if room > 0 else []
            row = [cls, *prompt_ids, sep, *response_ids, sep]
            ids.append(row)
            scored.append([False] * (len(prompt_ids) + 2) + [True] * len(response_ids) + [False])
            types.append([0] * (len(prompt_ids) + 2) + [1] * (len(response_ids) + 1))
    length = max(len(r) for r in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out_ids = np.full((len(ids), length), pad, dtype=np.int64)
    attention = np.zeros((len(ids), length), dtype=bool)
    out_scored = np.zeros((len(ids), length), dtype=bool)
    out_types = np.zeros((len(ids), length), dtype=np.int64)
    for i, (row, score, kind) in enumerate(zip(ids, scored, types)):
        out_ids[i, : len(row)], attention[i, : len(row)] = row, True
        out_scored[i, : len(row)], out_types[i, : len(row)] = score, kind
    return TokenizedTexts(out_ids, attention, out_scored, None if is_causal else out_types)


class TopLayers:
    """The last `k` layers of `model` (a torch module kept trainable) and how to run them on cached states."""

    def __init__(self, model, k: int, is_causal: bool):
        import torch

        self.model, self.is_causal = model, is_causal
        layers = model.layers if is_causal else model.encoder.layer
        if not 0 <= k <= len(layers):
            raise UnknownEncoderError(f"reward model: trainable_layers must be in 0..{len(layers)}, got {k}")
        self.k, self.depth = k, len(layers)
        self.layers = torch.nn.ModuleList(list(layers)[len(layers) - k :])
        self.norm = getattr(model, "norm", None) if is_causal else None
        self.hidden_size = model.config.hidden_size

    def parameters(self):
        params = list(self.layers.parameters())
        if self.norm is not None and self.k:
            params += list(self.norm.parameters())
        return params

    def lower_states(self, texts: TokenizedTexts, batch_size: int = 64) -> np.ndarray:
        """The input of the first trainable layer (the final output when k = 0) for every text, float16."""
        import torch
        from tqdm.auto import tqdm

        n, length = texts.input_ids.shape
        out = np.zeros((n, length, self.hidden_size), dtype=np.float16)
        order = np.argsort(texts.attention.sum(1))  # similar lengths together: little padding per batch
        for start in tqdm(range(0, n, batch_size), desc="encode (frozen layers)", unit="batch"):
            index = order[start : start + batch_size]
            width = int(texts.attention[index].sum(1).max())
            inputs = {
                "input_ids": torch.from_numpy(texts.input_ids[index, :width]),
                "attention_mask": torch.from_numpy(texts.attention[index, :width].astype(np.int64)),
            }
            if texts.token_type_ids is not None:
                inputs["token_type_ids"] = torch.from_numpy(texts.token_type_ids[index, :width])
            with torch.inference_mode():
                output = self.model(**inputs, output_hidden_states=True)
            states = output.last_hidden_state if self.k == 0 else output.hidden_states[self.depth - self.k]
            out[index, :width] = states.float().numpy().astype(np.float16)
        return out

    def forward(self, states, attention):
        """The top layers on cached states: (batch, length, hidden) float32, attention (batch, length) bool."""
        import torch
        from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

        if self.k == 0:
            return states
        mask_2d = attention.to(torch.long)
        hidden = states
        if self.is_causal:
            position_ids = torch.arange(hidden.shape[1]).unsqueeze(0)
            mask = create_causal_mask(
                config=self.model.config,
                inputs_embeds=hidden,
                attention_mask=mask_2d,
                cache=None,
                position_ids=position_ids,
            )
            rotary = self.model.rotary_emb(hidden, position_ids=position_ids)
            for layer in self.layers:
                hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary, position_ids=position_ids)
            return self.norm(hidden) if self.norm is not None else hidden
        mask = create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=mask_2d)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=mask)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        return hidden


def masked_mean(hidden, scored):
    """Mean of each row's scored (response) token states."""
    weights = scored.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
