"""Direct Preference Optimisation with TRL, in TRL's own script layout (`trl/scripts/dpo.py`).

    python -m alignment.dpo --config recipe.yaml
    python -m alignment.dpo --model_name_or_path runs/default/pretrain/model \
        --dataset_name runs/default/annotate/preferences.jsonl --output_dir runs/default/align/model \
        --learning_rate 5e-5 --beta 0.1 --use_peft --lora_r 8
    mintline align dpo ...           # the same parser, as a sub-command

Every `DPOConfig`, `ModelConfig` and `ScriptArguments` flag works (`TrlParser`). `dataset_name`
may be a local preference JSONL. With `--use_peft`, only the LoRA adapter is saved (a PEFT
adapter directory that reloads onto its base with `PeftModel.from_pretrained`).
"""

from __future__ import annotations

import argparse
import logging

from alignment.trl_common import (
    cpu_defaults,
    keep_stdout_for_results,
    load_preference_dataset,
    prepare_for_cpu,
    save_trained,
    write_figures,
)

log = logging.getLogger("alignment")


def main(script_args, training_args, model_args, options=None) -> dict:
    """Train, save, and return the figures (loss, steps, implicit-reward accuracy on the eval split)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer, get_peft_config

    from alignment.errors import ConfigError
    from alignment.evaluation import implicit_reward_accuracy

    if not model_args.model_name_or_path:
        raise ConfigError("model_name_or_path: required (the policy's model directory)")
    prepare_for_cpu(training_args)
    want_eval = training_args.eval_strategy != "no"
    dataset = load_preference_dataset(script_args, want_eval, seed=training_args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, dtype=model_args.dtype or "float32")
    trainer = DPOTrainer(
        model=model,
        ref_model=None,  # TRL builds the frozen reference itself (or uses the base under a LoRA adapter)
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        eval_dataset=dataset[script_args.dataset_test_split] if want_eval else None,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    keep_stdout_for_results(trainer)
    train = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    figures = {
        "train_loss": round(float(train.training_loss), 5),
        "steps": int(train.global_step),
        "train_pairs": len(dataset[script_args.dataset_train_split]),
        "beta": training_args.beta,
        "use_peft": bool(model_args.use_peft),
    }
    if want_eval:
        held_out = dataset[script_args.dataset_test_split]
        figures["eval_pairs"] = len(held_out)
        figures["eval_implicit_reward_accuracy"] = implicit_reward_accuracy(
            trainer.model, getattr(trainer, "ref_model", None), tokenizer, held_out["prompt"], held_out["chosen"], held_out["rejected"],
            max_length=training_args.max_length or 512,
        )
    figures.update(save_trained(trainer, tokenizer, training_args.output_dir))
    write_figures(training_args.output_dir, "dpo_figures.json", figures)
    log.info("DPO: %d steps, loss %.4f, saved %s to %s", figures["steps"], figures["train_loss"], figures["saved"], training_args.output_dir)
    return figures


def make_parser(subparsers: argparse._SubParsersAction | None = None, prog: str | None = None):
    from trl import DPOConfig, ModelConfig, ScriptArguments, TrlParser

    dataclass_types = (ScriptArguments, DPOConfig, ModelConfig)
    if subparsers is not None:
        parser = subparsers.add_parser("dpo", help="DPO with TRL on a preference JSONL", dataclass_types=dataclass_types)
    else:
        parser = TrlParser(dataclass_types, prog=prog or "python -m alignment.dpo")
    cpu_defaults(parser)
    return parser


if __name__ == "__main__":
    import json
    import sys

    from alignment.errors import AlignmentError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    script_args, training_args, model_args = make_parser().parse_args_and_config()
    try:
        print(json.dumps(main(script_args, training_args, model_args)))
    except AlignmentError as exc:
        sys.stderr.write(f"alignment.dpo: error: {exc}\n")
        raise SystemExit(exc.exit_code) from None
