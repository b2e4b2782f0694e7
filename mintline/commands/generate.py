"""`mintline generate`: text from a saved model, batched; the pattern every command follows.

mintline generate --model runs/default/pretrain/model --prompt "def add(" --max_new_tokens 40
mintline generate --model DIR --prompts_file prompts.txt --json
mintline generate --model DIR --prompt "def add(" --watermark-key runs/default/watermark/key.json
mintline generate --model runs/default/align/model --prompt "def add("    # a PEFT adapter on its base
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from mintline.console import CommandResult
from pretrain.generation import GenerationArguments


@dataclass
class GenerateArguments:
    model: str = field(
        default=None,
        metadata={"help": "model directory (save_pretrained layout, with its tokenizer), or a PEFT adapter directory"},
    )
    base_model: str = field(
        default=None,
        metadata={
            "help": "for a PEFT adapter: its base model directory (default: the adapter config's "
            "base_model_name_or_path, relative to the adapter directory when relative)"
        },
    )
    prompt: list[str] = field(default_factory=list, metadata={"help": "one or more prompts"})
    prompts_file: str = field(default=None, metadata={"help": "a text file with one prompt per line"})
    watermark_key: str = field(
        default=None, metadata={"help": "watermark the output with this key file ('mintline watermark keygen')"}
    )

    def __post_init__(self):
        if not self.model:
            raise ValueError("model: required (a directory written by save_pretrained)")
        if not self.prompt and not self.prompts_file:
            raise ValueError("prompt or prompts_file: give at least one prompt")


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    dataclass_types = (GenerateArguments, GenerationArguments)
    if subparsers is None:
        from mintline.argparsing import MintlineParser

        parser = MintlineParser(dataclass_types, prog="mintline generate")
    else:
        parser = subparsers.add_parser("generate", help="generate text from a model", dataclass_types=dataclass_types)
    parser.set_defaults(handler=main)
    return parser


def read_prompts(args: GenerateArguments) -> list[str]:
    from pretrain.errors import ConfigError

    prompts = list(args.prompt)
    if args.prompts_file:
        path = Path(args.prompts_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ConfigError(f"prompts_file: no such file: {path}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"prompts_file: {path} is not UTF-8 text") from None
        prompts.extend(line.replace("\\n", "\n") for line in lines if line.strip())
    if not prompts:
        raise ConfigError(f"prompts_file: {args.prompts_file} holds no prompts")
    return prompts


def watermark_processors(key, tokenizer_dir, tokenizer, model):
    """The watermark processor for `key`, after checking the key was made for this model's tokenizer."""
    from transformers import LogitsProcessorList

    from watermark.keys import tokenizer_digest
    from watermark.processor import logits_processor_for

    digest, _ = tokenizer_digest(tokenizer_dir)
    key.check_tokenizer(digest, where=f"the tokenizer in {tokenizer_dir}")
    return LogitsProcessorList([logits_processor_for(key, tokenizer, vocab_size=model.config.vocab_size)])


def main(args: GenerateArguments, generation: GenerationArguments, options: argparse.Namespace) -> CommandResult:
    from pretrain.generation import generate_texts, load_model_and_tokenizer, locate_model

    prompts = read_prompts(args)
    location = locate_model(args.model, args.base_model)  # an adapter without its base fails before any loading
    from mintline.model_files import check_weight_files

    check_weight_files(location.model_dir)  # a corrupt file fails naming itself, not deep inside transformers
    if location.is_adapter:
        check_weight_files(location.base_dir, option="base_model")
    key = None
    if args.watermark_key:  # a bad key file fails before the model is loaded
        from watermark.keys import load_key

        key = load_key(args.watermark_key)
    model, tokenizer = load_model_and_tokenizer(args.model, base_model=args.base_model)
    processors = watermark_processors(key, location.tokenizer_dir, tokenizer, model) if key is not None else None
    texts = generate_texts(model, tokenizer, prompts, generation, logits_processor=processors)
    data = {"model": args.model, "samples": [{"prompt": p, "completion": t} for p, t in zip(prompts, texts)]}
    if location.is_adapter:
        data["base_model"] = str(location.base_dir)
    if key is not None:
        data["watermark_key_id"] = key.key_id
    text = "\n\n".join(f"### {p}\n{p}{t}" for p, t in zip(prompts, texts))
    return CommandResult(data=data, text=text)


if __name__ == "__main__":
    import sys

    from mintline.cli import main as cli_main

    raise SystemExit(cli_main(["generate", *sys.argv[1:]]))
