"""`mintline watermark`: keys, detection without the model, robustness evaluation, distillation.

    mintline watermark keygen --tokenizer DIR [--out KEYFILE] [--scheme synthid|kgw|gumbel] [--gamma .. --delta ..]
    mintline watermark detect --key KEYFILE [--key KEY2 ...] --tokenizer DIR [--json] FILE... | -
    mintline watermark evaluate --model DIR --key KEYFILE [--num_samples 200] [--attacks ...]
    mintline watermark distill --model DIR --key KEYFILE --out DIR [--steps ...]

`detect` reads the key and the tokenizer only. `--json` prints one JSON object per input
(JSON Lines) with z_score, p_value, num_tokens_scored, green_count, watermarked (true, false,
or null for "insufficient evidence") and key_id. A FILE ending in .jsonl holds one text per
line as {"text": ...} or {"prompt": ..., "completion": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mintline import layout
from mintline.console import CommandResult, format_key_values, format_table
from mintline.pipeline.corpus import human_passages
from watermark.detect import DetectionConfig


@dataclass
class KeygenArguments:
    tokenizer: str = field(default=None, metadata={"help": "tokenizer (or model) directory the key is bound to"})
    out: str = field(
        default=None, metadata={"help": "key file to write (mode 0600); default RUN_DIR/watermark/key.json"}
    )
    scheme: Literal["kgw", "synthid", "gumbel"] = field(
        default=None,
        metadata={
            "help": "synthid (tournament, the default), kgw (green lists; implied by --gamma/--delta/--seeding) "
            "or gumbel (Gumbel/EXP sampling)"
        },
    )
    gamma: float = field(default=None, metadata={"help": "kgw: green-list fraction of the vocabulary (default 0.25)"})
    delta: float = field(default=None, metadata={"help": "kgw: logit bias added to green tokens (default 2.5)"})
    seeding: Literal["lefthash", "selfhash"] = field(
        default=None, metadata={"help": "kgw: lefthash (default) or selfhash"}
    )
    context_width: int = field(
        default=None,
        metadata={"help": "kgw, gumbel: context tokens that seed the green list / the noise (default 1 / 4)"},
    )
    ngram_len: int = field(default=None, metadata={"help": "synthid: n-gram length (default 5)"})
    depth: int = field(default=None, metadata={"help": "synthid: tournament layers, <= 64 (default 30)"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace an existing key file (its marks become undetectable)"}
    )
    run_dir: str = field(
        default="runs/default",
        metadata={"help": "run directory; the key goes to RUN_DIR/watermark/key.json unless --out"},
    )

    def __post_init__(self):
        if not self.tokenizer:
            raise ValueError("tokenizer: required (the tokenizer or model directory the key is for)")

    def scheme_params(self) -> dict:
        """The parameters given; settles `scheme` when it was not named (KGW's parameters imply kgw)."""
        from watermark.keys import scheme_for

        tunable = {
            "kgw": ("gamma", "delta", "seeding", "context_width"),
            "synthid": ("ngram_len", "depth"),
            "gumbel": ("context_width",),
        }
        names = ("gamma", "delta", "seeding", "context_width", "ngram_len", "depth")
        given = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        if self.scheme is None:
            self.scheme = scheme_for(given)
        wrong = [n for n in given if n not in tunable[self.scheme]]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not a parameter of the {self.scheme} scheme")
        return given


@dataclass
class DetectArguments:
    key: list[str] = field(
        default_factory=list,
        metadata={
            "help": "key file; repeat --key for several keys (a text is attributed to one of them)",
            "action": "append",  # one file per --key, so `--key K FILE` leaves FILE to be detected
        },
    )
    tokenizer: str = field(
        default=None, metadata={"help": "tokenizer directory (a model directory works too; weights are never read)"}
    )
    prompt: str = field(
        default=None, metadata={"help": "prompt that precedes every text: used as context, never scored"}
    )
    synthid_detector: str = field(
        default=None,
        metadata={"help": "synthid keys: a Bayesian detector trained by 'watermark evaluate' (adds its posterior)"},
    )
    reference: str = field(
        default=None,
        metadata={"help": "weight mark: the released (marked) model, from the key holder; runs GaussMark's text test"},
    )

    def __post_init__(self):
        if not self.key:
            raise ValueError("key: required (a key file written by 'mintline watermark keygen')")
        if not self.tokenizer and not self.reference:
            raise ValueError("tokenizer: required (the directory holding tokenizer.json)")


@dataclass
class EvaluateArguments:
    model: str = field(
        default=None, metadata={"help": "model directory that generates the texts (with its tokenizer)"}
    )
    key: str = field(default=None, metadata={"help": "watermark key file"})
    reference_model: str = field(default=None, metadata={"help": "model that scores perplexity (default: --model)"})
    out: str = field(default=None, metadata={"help": "output directory; default RUN_DIR/watermark/evaluation"})
    human_passages: int = field(
        default=2000, metadata={"help": "human passages (built-in corpus) for the FPR and attacks"}
    )
    survival_texts: int = field(
        default=24, metadata={"help": "weight attacks: 200-token plain-generate texts per attacked model"}
    )
    other_model: str = field(
        default=None,
        metadata={"help": "weight attack average:WEIGHT: an independently trained model of the same shape"},
    )

    def __post_init__(self):
        if not self.model or not self.key:
            raise ValueError("model and key: both required")
        if self.human_passages < 10:
            raise ValueError(f"human_passages: must be >= 10, got {self.human_passages}")
        if self.survival_texts < 2:
            raise ValueError(f"survival_texts: must be >= 2, got {self.survival_texts}")


@dataclass
class DistillArguments:
    model: str = field(default=None, metadata={"help": "model directory to distil the mark into (with its tokenizer)"})
    key: str = field(default=None, metadata={"help": "watermark key file"})
    out: str = field(
        default=None,
        metadata={"help": "output directory (model/ + distillation.json); default RUN_DIR/watermark/distilled"},
    )
    human_passages: int = field(
        default=3000, metadata={"help": "human passages (built-in corpus): prompts and clean fine-tuning text"}
    )

    def __post_init__(self):
        if not self.model or not self.key:
            raise ValueError("model and key: both required")
        if self.human_passages < 10:
            raise ValueError(f"human_passages: must be >= 10, got {self.human_passages}")


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    from mintline.argparsing import MintlineParser

    description = (
        "Keyed watermarks: make keys, detect marked text without the model, evaluate robustness, "
        "distill the mark into weights."
    )
    if subparsers is None:
        parser = MintlineParser(None, prog="mintline watermark", description=description)
    else:
        parser = subparsers.add_parser(
            "watermark", help="watermark keys, detection, evaluation, distillation", description=description
        )
    verbs = parser.add_subparsers(
        parser_class=MintlineParser, title="verbs", metavar="{keygen,detect,evaluate,distill,embed,trace,survive}"
    )

    keygen = verbs.add_parser(
        "keygen",
        help="make a watermark key for a tokenizer",
        description="Write a key file (mode 0600): a 256-bit secret, the scheme and its parameters, and the "
        "tokenizer's digest. Prints the public key id.",
        dataclass_types=(KeygenArguments,),
    )
    keygen.set_defaults(handler=keygen_main)

    detect = verbs.add_parser(
        "detect",
        help="detect the watermark in text files (key + tokenizer only)",
        description="Score each FILE (or - for stdin): tokens scored, green count, z-score, exact binomial "
        "p-value, verdict at --fpr.",
        dataclass_types=(DetectArguments, DetectionConfig),
    )
    detect.add_argument("files", nargs="+", metavar="FILE", help="text files, .jsonl files of texts, or - for stdin")
    detect.set_defaults(handler=detect_main)

    from mintline.journal import RunArguments
    from pretrain.generation import GenerationArguments
    from watermark.evaluate import EvaluationConfig

    evaluate = verbs.add_parser(
        "evaluate",
        help="robustness (TPR/AUC per attack and length), human-text FPR and quality cost of a key",
        description="Generate --num_samples texts with and without the mark, attack them, detect, and report TPR at each "
        "FPR and ROC AUC per attack and length with bootstrap intervals, the FPR on human passages, perplexity and "
        "distinct-n; writes evaluation.json and score_distributions.png. --max_new_tokens is ignored (--lengths rule).",
        dataclass_types=(EvaluateArguments, EvaluationConfig, GenerationArguments, RunArguments),
    )
    evaluate.set_defaults(handler=evaluate_main)

    from watermark.distill import DistillConfig

    distill = verbs.add_parser(
        "distill",
        help="fine-tune the model on its own watermarked samples so plain generate stays detectable",
        description="Distil the key's mark into the weights (Gu et al. 2024): the student learns the watermarked "
        "teacher's distribution, then plain generation (no processor) is detected with the key; detection is "
        "measured again after --fade_steps of clean fine-tuning to show where the mark fades. "
        "--max_new_tokens is ignored (--sample_tokens / --eval_tokens rule).",
        dataclass_types=(DistillArguments, DistillConfig, GenerationArguments, RunArguments),
    )
    distill.set_defaults(handler=distill_main)

    from mintline.commands.watermark_weights import add_weight_verbs

    add_weight_verbs(verbs)
    return parser


def distill_main(args: DistillArguments, config, generation, run, options: argparse.Namespace) -> CommandResult:
    from mintline.journal import Journal
    from pretrain.generation import load_model_and_tokenizer, make_generate
    from watermark.distill import distill_watermark
    from watermark.evaluate import prompts_from
    from watermark.keys import load_key_for

    key = load_key_for(args.key, args.model)
    out = Path(args.out) if args.out else layout.stage_dir(run.run_dir, layout.WATERMARK) / "distilled"
    journal = Journal(run.run_dir)
    stage_config = {
        "distill": config,
        "generation": generation,
        "human_passages": args.human_passages,
        "key_id": key.key_id,
    }
    with journal.stage(
        "watermark_distill",
        config=stage_config,
        inputs={"model": args.model, "key": args.key},
        outputs=[out],
        force=run.force,
    ) as stage:
        if stage.skipped:
            return CommandResult(
                data=stage.figures, text=f"watermark distill: up to date ({journal.path}); --force to redo"
            )
        model, tokenizer = load_model_and_tokenizer(args.model)
        passages = human_passages(limit=args.human_passages)

        def generate(prompts, max_new_tokens, processor, model_now):
            return make_generate(model_now, tokenizer, generation)(prompts, max_new_tokens, processor)

        figures = distill_watermark(
            model,
            tokenizer,
            key,
            args.model,
            prompts_from(passages, max(config.num_samples, 64)),
            passages,
            generate,
            config,
            out,
        )
        stage.figures.update(
            {
                "distill_median_z_after": figures["after"]["median_z"],
                "distill_detected_at_0.01pct_fpr": figures["after"]["detected_at_0.01pct_fpr"],
                "distill_fades_at_step": figures["fades_at_step"],
            }
        )
    rows = [
        {
            "clean_steps": p["steps"],
            "median_z": p["median_z"],
            "detected@1%": p["detected_at_1pct_fpr"],
            "detected@0.01%": p["detected_at_0.01pct_fpr"],
        }
        for p in figures["fade"]
    ]
    lines = [
        f"plain generation, before distillation: median z {figures['before']['median_z']:.2f}, "
        f"detected at 0.01% FPR {figures['before']['detected_at_0.01pct_fpr']:.0%}",
        f"teacher (model + processor):           median z {figures['teacher']['median_z']:.2f}",
        f"plain generation, after distillation:  median z {figures['after']['median_z']:.2f}, "
        f"detected at 0.01% FPR {figures['after']['detected_at_0.01pct_fpr']:.0%}",
        "",
        "further fine-tuning on clean text:",
        format_table(rows),
        f"fades at step: {figures['fades_at_step'] if figures['fades_at_step'] is not None else 'not within the schedule'}",
        f"model: {figures.get('model_dir')}",
    ]
    return CommandResult(data=figures, text="\n".join(lines))


def evaluate_main(args: EvaluateArguments, config, generation, run, options: argparse.Namespace) -> CommandResult:
    from dataclasses import replace

    from mintline.commands.watermark_weights import check_suite, survival_suite
    from mintline.journal import Journal
    from watermark.evaluate import text_attack_specs
    from watermark.keys import load_key_for

    key = load_key_for(args.key, args.model)
    text_specs = text_attack_specs(config.attacks)
    weight_specs = [spec for spec in config.attacks if spec not in text_specs]
    if weight_specs:  # the key must hold a weight mark: say so before any model loads
        check_suite(weight_specs, key, args.other_model)
    out = Path(args.out) if args.out else layout.stage_dir(run.run_dir, layout.WATERMARK) / "evaluation"
    journal = Journal(run.run_dir)
    stage_config = {
        "evaluation": config,
        "generation": generation,
        "reference_model": args.reference_model,
        "human_passages": args.human_passages,
        "key_id": key.key_id,
        **({"survival_texts": args.survival_texts, "other_model": args.other_model} if weight_specs else {}),
    }
    inputs = {"model": args.model, "key": args.key}
    with journal.stage(
        "watermark_evaluate", config=stage_config, inputs=inputs, outputs=[out], force=run.force
    ) as stage:
        if stage.skipped:
            return CommandResult(
                data=stage.figures, text=f"watermark evaluate: up to date ({journal.path}); --force to redo"
            )
        data, lines = {}, []
        if text_specs or not weight_specs:
            data = text_evaluation(args, replace(config, attacks=text_specs), generation, key, out)
            stage.figures.update(data["summary"])
            lines += text_evaluation_lines(data)
        if weight_specs:
            rows = survival_suite(args.model, key, ["none", *weight_specs], args.survival_texts, args.other_model)
            out.mkdir(parents=True, exist_ok=True)
            survival = {"model": str(args.model), "key_id": key.key_id, "attacks": rows}
            (out / "survival.json").write_text(json.dumps(survival, indent=2) + "\n", encoding="utf-8")
            data["survival"] = survival
            stage.figures.update(
                {
                    "survival_min_detected_at_1e-4": min(r["detected_at_1e-4"] for r in rows),
                    "survival_max_trace_log10_p": max(r["trace_log10_p"] for r in rows),
                }
            )
            lines += [""] if lines else []
            lines += [
                "weight attacks (the mark in the weights):",
                format_table(rows),
                f"survival: {out / 'survival.json'}",
            ]
    return CommandResult(data=data, text="\n".join(lines))


def text_evaluation(args: EvaluateArguments, config, generation, key, out: Path) -> dict:
    """The text mark's evaluation: marked vs plain generations under each text attack, human FPR, quality."""
    from pretrain.generation import load_model_and_tokenizer, make_generate
    from watermark.evaluate import evaluate_watermark, perplexity_scorer, prompts_from

    model, tokenizer = load_model_and_tokenizer(args.model)
    reference = model if not args.reference_model else load_model_and_tokenizer(args.reference_model)[0]
    passages = human_passages(limit=args.human_passages)
    return evaluate_watermark(
        key,
        args.model,
        prompts_from(passages, config.num_samples),
        passages,
        make_generate(model, tokenizer, generation),
        config,
        out,
        perplexity=perplexity_scorer(reference, tokenizer),
        pad_id=tokenizer.pad_token_id or 0,
    )


def text_evaluation_lines(report: dict) -> list[str]:
    rows = [
        {
            "attack": r["attack"],
            "length": r["length"],
            "tpr@1%": r.get("tpr_at_0.01"),
            "tpr@0.01%": r.get("tpr_at_0.0001"),
            "auc": r["auc"],
            "auc_ci": "[{:.3f}, {:.3f}]".format(*r["auc_ci"]),
        }
        for r in report["table"]
    ]
    human = report["human"]
    lines = [format_table(rows), "", f"human text: {human['passages']} passages"]
    lines += [
        f"  {name}: {v['false_positives']} false positives (rate {v['rate']:.2g})"
        for name, v in human.items()
        if name != "passages"
    ]
    lines += [
        "quality: " + ", ".join(f"{k} {v:.4g}" for k, v in report["quality"].items()),
        f"plot: {report['plot']}",
        f"report: {report['report']}",
    ]
    return lines


def keygen_main(args: KeygenArguments, options: argparse.Namespace) -> CommandResult:
    from watermark.keys import generate_key, load_key

    try:
        params = args.scheme_params()
    except ValueError as exc:
        from watermark.errors import ConfigError

        raise ConfigError(str(exc)) from None
    out = Path(args.out) if args.out else layout.watermark_key(args.run_dir)
    key_id = generate_key(args.tokenizer, out, scheme=args.scheme, overwrite=args.overwrite, **params)
    info = load_key(out).public_info()
    data = {
        "key_id": key_id,
        "key_file": os.fspath(out),
        "scheme": info["scheme"],
        "params": info["params"],
        "tokenizer_digest": info["tokenizer"]["digest"],
    }
    text = (
        format_key_values(data)
        + f"\n(publish the key id; keep {out} secret: anyone holding it can detect and forge the mark)"
    )
    return CommandResult(data=data, text=text)


def detect_main(args: DetectArguments, config: DetectionConfig, options: argparse.Namespace) -> CommandResult | None:
    if args.reference:  # the mark in the weights (watermark embed): a gradient test, not green lists
        from mintline.commands.watermark_weights import detect_reference_main

        return detect_reference_main(args, config, options)
    from watermark.detect import Detector, summarize
    from watermark.inputs import read_inputs
    from watermark.keys import load_keys

    keys, _ = load_keys(args.key, args.tokenizer)  # key and tokenizer problems surface before reading input
    items = read_inputs(options.files)
    detector = Detector(keys, args.tokenizer, config, synthid_detector=args.synthid_detector)
    prompts = [prompt if prompt is not None else args.prompt for _, _, prompt in items]
    results = detector.detect_texts([t for _, t, _ in items], prompts=prompts, sources=[s for s, _, _ in items])
    if options.json:
        # one object per input (JSON Lines), so a stream of texts maps line for line
        for result in results:
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        sys.stdout.flush()
        return None
    rows = [
        {
            "source": r.source,
            "verdict": r.verdict,
            "z": round(r.z_score, 2),
            "p_value": r.p_value,
            "scored": r.num_tokens_scored,
            "green": r.green_count,
            "key": r.key_id,
        }
        for r in results
    ]
    text = format_table(rows)
    for r in results:
        for span in r.spans:
            chars = f"{span.get('start_char')}-{span.get('end_char')}"
            text += f"\n  {r.source}: marked span chars {chars} (z {span['z_score']:.1f})"
    summary = summarize(results)
    text += (
        f"\n{summary['watermarked']} watermarked, {summary['not watermarked']} not, "
        f"{summary['insufficient evidence']} insufficient evidence (fpr {config.fpr:g}, {len(keys)} key(s))"
    )
    return CommandResult(data={"results": [r.to_dict() for r in results], **summary}, text=text)


if __name__ == "__main__":
    from mintline.cli import main

    raise SystemExit(main(["watermark", *sys.argv[1:]]))
