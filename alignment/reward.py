"""A full-model reward model with TRL's `RewardTrainer`, in TRL's script layout (`trl/scripts/reward.py`).

    python -m alignment.reward --model_name_or_path runs/default/pretrain/model \
        --dataset_name preferences.jsonl --output_dir runs/default/align/reward-model --num_train_epochs 1
    mintline align reward ...        # the same parser, as a sub-command

The data flags are TRL's (`dataset_name`, or a `datasets:` mixture; see `alignment.trl_common`).

The policy checkpoint is loaded as `AutoModelForSequenceClassification(num_labels=1)`: its body
is reused and a fresh scalar head is trained with the Bradley–Terry loss. This is the
expensive, most accurate reward model; the active-learning loop uses the cheap Bradley–Terry
heads over frozen features (`alignment.bradley_terry`) because it refits after every batch.
"""

from __future__ import annotations

import argparse
import logging

from alignment.trl_common import (
    accept_dataset_mixtures,
    check_streaming,
    count_rows,
    cpu_defaults,
    keep_stdout_for_results,
    load_preference_splits,
    prepare_for_cpu,
    save_trained,
    write_figures,
)

log = logging.getLogger("alignment")


def main(script_args, training_args, model_args, dataset_args=None) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardTrainer, get_peft_config

    from alignment.errors import ConfigError

    if not model_args.model_name_or_path:
        raise ConfigError("model_name_or_path: required (a model directory whose body the reward model reuses)")
    prepare_for_cpu(training_args)
    check_streaming(script_args, training_args, dataset_args)
    want_eval = training_args.eval_strategy != "no"
    train_dataset, eval_dataset = load_preference_splits(script_args, want_eval, training_args.seed, dataset_args)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path, num_labels=1, dtype=model_args.dtype or "float32"
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    peft_config = get_peft_config(model_args)
    if peft_config is not None and model_args.lora_task_type == "CAUSAL_LM":
        peft_config.task_type = "SEQ_CLS"  # the scalar head must be trained, not frozen
    trainer = RewardTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    keep_stdout_for_results(trainer)
    train = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    figures = {
        "train_loss": round(float(train.training_loss), 5),
        "steps": int(train.global_step),
        "train_pairs": count_rows(train_dataset),
        "use_peft": bool(model_args.use_peft),
    }
    if want_eval:
        metrics = trainer.evaluate()
        figures["eval_pairs"] = count_rows(eval_dataset)
        figures["eval_accuracy"] = round(float(metrics.get("eval_accuracy", float("nan"))), 4)
    figures.update(save_trained(trainer, tokenizer, training_args.output_dir))
    write_figures(training_args.output_dir, "reward_figures.json", figures)
    return figures


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None):
    from trl import DatasetMixtureConfig, ModelConfig, RewardConfig, ScriptArguments, TrlParser

    dataclass_types = (ScriptArguments, RewardConfig, ModelConfig, DatasetMixtureConfig)
    if subparsers is not None:
        parser = subparsers.add_parser(
            "reward", help="full-model reward model with TRL's RewardTrainer", dataclass_types=dataclass_types
        )
    else:
        parser = TrlParser(dataclass_types, prog=prog or "python -m alignment.reward")
    cpu_defaults(parser)
    accept_dataset_mixtures(parser)
    return parser


if __name__ == "__main__":
    from alignment.trl_common import run_script

    raise SystemExit(run_script("alignment.reward", make_parser, main))
