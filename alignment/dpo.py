"""Direct Preference Optimisation with TRL, in TRL's own script layout (`trl/scripts/dpo.py`).

    python -m alignment.dpo --config recipe.yaml
    python -m alignment.dpo --model_name_or_path runs/default/pretrain/model \
        --dataset_name runs/default/annotate/preferences.jsonl --output_dir runs/default/align/model \
        --learning_rate 5e-5 --beta 0.1 --use_peft --lora_r 8
    mintline align dpo ...           # the same parser, as a sub-command

Every `DPOConfig`, `ModelConfig`, `ScriptArguments` and `DatasetMixtureConfig` flag works
(`TrlParser`), so a recipe for TRL's own `trl dpo` runs here unchanged: `dataset_name` takes what
TRL's takes (a folder of split files) plus a single preference file, and a `datasets:` mixture
works as in TRL (see `alignment.trl_common`). With `--use_peft`, only the LoRA adapter is saved
(a PEFT adapter directory that reloads onto its base with `PeftModel.from_pretrained`).
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
    preference_columns,
    prepare_for_cpu,
    save_trained,
    write_figures,
)

log = logging.getLogger("alignment")


def main(script_args, training_args, model_args, dataset_args=None) -> dict:
    """Train, save, and return the figures (loss, steps, implicit-reward accuracy on the eval split)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer, get_peft_config

    from alignment.errors import ConfigError
    from alignment.evaluation import implicit_reward_accuracy

    if not model_args.model_name_or_path:
        raise ConfigError("model_name_or_path: required (the policy's model directory)")
    prepare_for_cpu(training_args)
    check_streaming(script_args, training_args, dataset_args)
    want_eval = training_args.eval_strategy != "no"
    train_dataset, eval_dataset = load_preference_splits(script_args, want_eval, training_args.seed, dataset_args)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, dtype=model_args.dtype or "float32")
    trainer = DPOTrainer(
        model=model,
        ref_model=None,  # TRL builds the frozen reference itself (or uses the base under a LoRA adapter)
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    keep_stdout_for_results(trainer)
    train = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    figures = {
        "train_loss": round(float(train.training_loss), 5),
        "steps": int(train.global_step),
        "train_pairs": count_rows(train_dataset),
        "beta": training_args.beta,
        "use_peft": bool(model_args.use_peft),
    }
    if want_eval:
        prompts, chosen, rejected = preference_columns(eval_dataset)
        figures["eval_pairs"] = len(prompts)
        figures["eval_implicit_reward_accuracy"] = implicit_reward_accuracy(
            trainer.model,
            getattr(trainer, "ref_model", None),
            tokenizer,
            prompts,
            chosen,
            rejected,
            max_length=training_args.max_length or 512,
        )
    figures.update(save_trained(trainer, tokenizer, training_args.output_dir))
    write_figures(training_args.output_dir, "dpo_figures.json", figures)
    log.info(
        "DPO: %d steps, loss %.4f, saved %s to %s",
        figures["steps"],
        figures["train_loss"],
        figures["saved"],
        training_args.output_dir,
    )
    return figures


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None):
    from trl import DatasetMixtureConfig, DPOConfig, ModelConfig, ScriptArguments, TrlParser

    dataclass_types = (ScriptArguments, DPOConfig, ModelConfig, DatasetMixtureConfig)
    if subparsers is not None:
        parser = subparsers.add_parser("dpo", help="DPO with TRL on preference data", dataclass_types=dataclass_types)
    else:
        parser = TrlParser(dataclass_types, prog=prog or "python -m alignment.dpo")
    cpu_defaults(parser)
    accept_dataset_mixtures(parser)
    return parser


if __name__ == "__main__":
    from alignment.trl_common import run_script

    raise SystemExit(run_script("alignment.dpo", make_parser, main))
