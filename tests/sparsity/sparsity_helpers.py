"""Tiny models, datasets and Trainer settings shared by the sparsity tests."""

from __future__ import annotations

import torch


def tiny_llama(
    vocab_size: int = 512,
    heads: int = 4,
    kv_heads: int = 4,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
    model_type: str = "llama",
    seed: int = 0,
):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.for_model(
        model_type,
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=intermediate,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    return AutoModelForCausalLM.from_config(config)


class TokenBlocks(torch.utils.data.Dataset):
    """Fixed-length blocks of token ids as the Trainer expects them (labels = inputs)."""

    def __init__(self, blocks: torch.Tensor):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, index):
        return {"input_ids": self.blocks[index], "labels": self.blocks[index]}


def training_arguments(output_dir, **overrides):
    from transformers import TrainingArguments

    settings = dict(
        output_dir=str(output_dir),
        max_steps=12,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        warmup_steps=0,
        weight_decay=0.01,
        use_cpu=True,
        report_to="none",
        save_strategy="steps",
        save_steps=4,
        logging_steps=50,
        eval_strategy="no",
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        dataloader_num_workers=0,
        save_only_model=False,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)
