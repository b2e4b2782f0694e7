"""`mintline generate`: text from a saved model, batched; the pattern every command follows.

    mintline generate --model runs/default/pretrain/model --prompt "def add(" --max_new_tokens 40
    mintline generate --model DIR --prompts_file prompts.txt --json
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from mintline.console import CommandResult
from pretrain.generation import GenerationArguments


@dataclass
class GenerateArguments:
    model: str = field(default=None, metadata={"help": "model directory (save_pretrained layout, with its tokenizer)"})
    prompt: list[str] = field(default_factory=list, metadata={"help": "one or more prompts"})
    prompts_file: str = field(default=None, metadata={"help": "a text file with one prompt per line"})

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


def main(args: GenerateArguments, generation: GenerationArguments, options: argparse.Namespace) -> CommandResult:
    from pretrain.generation import generate_texts, load_model_and_tokenizer

    prompts = read_prompts(args)
    model, tokenizer = load_model_and_tokenizer(args.model)
    texts = generate_texts(model, tokenizer, prompts, generation)
    data = {"model": args.model, "samples": [{"prompt": p, "completion": t} for p, t in zip(prompts, texts)]}
    text = "\n\n".join(f"### {p}\n{p}{t}" for p, t in zip(prompts, texts))
    return CommandResult(data=data, text=text)


if __name__ == "__main__":
    import sys

    from mintline.cli import main as cli_main

    raise SystemExit(cli_main(["generate", *sys.argv[1:]]))
