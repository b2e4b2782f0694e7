"""`mintline watermark embed|trace` and `detect --reference`: the mark in the weights (watermark/weights.py).

    mintline watermark embed --model DIR --key KEYFILE --out DIR [--max_perplexity_ratio 1.04 | --relative_scale S]
    mintline watermark detect --key KEYFILE --reference RELEASED_DIR [--json] FILE... | -
    mintline watermark trace --model SUSPECT --key KEYFILE [--reference RELEASED_DIR] [--samples N] [--json]
    mintline watermark survive --model RELEASED_DIR --key KEYFILE [--attacks finetune:500:1e-4 int8 ...]

Kept apart from mintline/commands/watermark.py (the text mark's verbs), which registers these
verbs with `add_weight_verbs`, so each file stays one reader's worth.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mintline.console import CommandResult, format_key_values, format_table

CALIBRATION_TEXTS = 16  # base-model samples that set the text test's nuisance direction


@dataclass
class EmbedArguments:
    model: str = field(default=None, metadata={"help": "model directory to mark (with its tokenizer)"})
    key: str = field(default=None, metadata={"help": "key file (from keygen); the mark is recorded in it"})
    out: str = field(default=None, metadata={"help": "directory for the marked model (the release)"})
    replace_mark: bool = field(
        default=False, metadata={"help": "replace a weight mark the key already records for another release"}
    )
    validation_passages: int = field(
        default=200, metadata={"help": "human passages for the perplexity of marked vs unmarked (0 = skip)"}
    )
    calibration_passages: int = field(
        default=100,
        metadata={"help": "other human passages the noise scale is calibrated on (unless --relative_scale)"},
    )

    def __post_init__(self):
        if not self.model or not self.key or not self.out:
            raise ValueError("model, key and out: all required")
        if self.validation_passages < 0 or self.calibration_passages < 0:
            raise ValueError("validation_passages and calibration_passages: must be >= 0")


@dataclass
class TraceArguments:
    model: str = field(default=None, metadata={"help": "the suspect model directory"})
    key: str = field(default=None, metadata={"help": "key file holding the weight mark"})
    reference: str = field(
        default=None,
        metadata={
            "help": "the released (marked) model, supplied by the key holder: sharper white-box test, "
            "and needed by --samples"
        },
    )

    def __post_init__(self):
        if not self.model or not self.key:
            raise ValueError("model and key: both required")


def add_weight_verbs(verbs) -> None:
    from watermark.trace import TraceConfig
    from watermark.weights import EmbedConfig

    embed = verbs.add_parser(
        "embed",
        help="put a keyed mark into the weights (GaussMark), so plain generate carries it",
        description="Add keyed Gaussian noise (sigma = relative_scale x each matrix's RMS) to the chosen weight "
        "matrices, save the marked model to --out, and record the mark (tensors, sigmas, the release's digest) in "
        "the key file. The scale is the largest that keeps validation perplexity within --max_perplexity_ratio "
        "(calibrated on other passages than those reported) unless --relative_scale fixes it. Reports validation "
        "perplexity of the marked vs unmarked model.",
        dataclass_types=(EmbedArguments, EmbedConfig),
    )
    embed.set_defaults(handler=embed_main)
    trace = verbs.add_parser(
        "trace",
        help="did these weights come from our release? white-box test, and --samples N black-box",
        description="White-box: the suspect's marked tensors (minus the base weights when --reference is given) "
        "projected on the keyed noise; exactly N(0,1) for an unrelated model, one exact p-value. --samples N: "
        "generate N texts from the suspect and run the text test on them (needs --reference).",
        dataclass_types=(TraceArguments, TraceConfig),
    )
    trace.set_defaults(handler=trace_main)
    add_survive_verb(verbs)


def _calibration_prompts(count: int, skip: int = 0) -> list[str]:
    from mintline.pipeline.corpus import human_passages
    from watermark.evaluate import prompts_from

    return prompts_from(human_passages()[skip:], count)


def _plain_generate(model, tokenizer, seed: int):
    """generate(prompts, tokens) -> completion ids with the default sampling settings, EOS suppressed."""
    from pretrain.generation import GenerationArguments, make_generate

    generate = make_generate(model, tokenizer, GenerationArguments(batch_size=16, seed=seed))
    return lambda prompts, tokens: generate(prompts, tokens, None)


def load_base(reference_dir, key, mark):
    """(base model rebuilt from the release and the key, tokenizer); refuses weights that are not the release."""
    from pretrain.generation import load_model_and_tokenizer
    from watermark.keys import tokenizer_digest
    from watermark.weights import restore_base

    key.check_tokenizer(tokenizer_digest(reference_dir)[0], where=f"the tokenizer in {reference_dir}")
    model, tokenizer = load_model_and_tokenizer(reference_dir)
    restore_base(model, key, mark)
    return model, tokenizer


def base_scorer(reference_dir, key, mark):
    base, tokenizer = load_base(reference_dir, key, mark)
    return scorer_on_base(base, tokenizer, key, mark), tokenizer


def scorer_on_base(base, tokenizer, key, mark):
    """The text test, calibrated on the base model's own samples and on human passages (built-in corpus)."""
    from mintline.pipeline.corpus import human_passages
    from watermark.trace import calibrated_scorer

    return calibrated_scorer(
        base,
        key,
        mark,
        tokenizer,
        _calibration_prompts(CALIBRATION_TEXTS, skip=7),
        _plain_generate(base, tokenizer, 7),
        human_texts=human_passages()[-2 * CALIBRATION_TEXTS :],
    )


def validation_perplexity(model, tokenizer, passages, max_tokens: int = 256) -> float:
    import math

    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for passage in passages:
            ids = torch.tensor([tokenizer(passage)["input_ids"][:max_tokens]])
            if ids.shape[1] < 2:
                continue
            loss = model(input_ids=ids, labels=ids).loss.item()
            total, count = total + loss * (ids.shape[1] - 1), count + ids.shape[1] - 1
    return math.exp(total / max(count, 1))


def embed_within_budget(model, tokenizer, key, config, calibration_passages):
    """(mark, calibration or None): embed at config.relative_scale, or first find the largest scale whose
    validation perplexity on `calibration_passages` stays within config.max_perplexity_ratio."""
    from dataclasses import replace

    from watermark.weights import calibrate_relative_scale, embed_weight_mark

    calibration = None
    if config.relative_scale is None:
        calibration = calibrate_relative_scale(
            model, key, config, lambda m: validation_perplexity(m, tokenizer, calibration_passages)
        )
        config = replace(config, relative_scale=calibration["relative_scale"])
    return embed_weight_mark(model, key, config), calibration


def embed_main(args: EmbedArguments, config, options: argparse.Namespace) -> CommandResult:
    from mintline.pipeline.corpus import human_passages
    from pretrain.generation import load_model_and_tokenizer
    from watermark.errors import ConfigError
    from watermark.keys import load_key_for
    from watermark.weights import attach_mark, weights_digest

    if config.relative_scale is None and args.calibration_passages < 10:
        raise ConfigError(
            "embed: calibrating the noise scale needs --calibration_passages >= 10 (or --relative_scale)"
        )
    key = load_key_for(args.key, args.model)
    model, tokenizer = load_model_and_tokenizer(args.model)
    everything = human_passages(limit=args.validation_passages + args.calibration_passages)
    passages = everything[: args.validation_passages]
    if passages:
        before = validation_perplexity(model, tokenizer, passages)
    mark, calibration = embed_within_budget(model, tokenizer, key, config, everything[args.validation_passages :])
    out = Path(args.out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    saved, _ = load_model_and_tokenizer(out)
    if weights_digest(saved) != mark.model_digest:  # what is published is what the key is bound to
        from watermark.errors import WeightMarkError

        raise WeightMarkError(f"{out}: the saved weights differ from the marked ones (dtype or tying changed)")
    key = attach_mark(key, mark, replace=args.replace_mark)
    data = {
        "model_dir": str(out),
        "key_id": key.key_id,
        "mark_id": key.weight_mark["mark_id"],
        "model_digest": mark.model_digest,
        "tensors_marked": len(mark.sigmas),
        "weights_marked": mark.num_marked,
        "relative_scale": mark.relative_scale,
    }
    if calibration:
        data["relative_scale_calibrated_to"] = config.max_perplexity_ratio
        data["calibration_trials"] = len(calibration["trials"])
    if passages:
        after = validation_perplexity(model, tokenizer, passages)
        data.update(
            {"validation_perplexity_unmarked": before, "validation_perplexity_marked": after, "ratio": after / before}
        )
    return CommandResult(data=data, text=format_key_values(data))


def detect_reference_main(args, config, options: argparse.Namespace) -> CommandResult | None:
    """`watermark detect --reference DIR`: GaussMark's text test, one exact p-value per input and one joint."""
    from watermark.errors import ConfigError
    from watermark.inputs import read_inputs
    from watermark.keys import load_key
    from watermark.weights import WeightMark

    if len(args.key) != 1:
        raise ConfigError("detect --reference: exactly one --key (the one that marked the release)")
    key = load_key(args.key[0])
    mark = WeightMark.from_key(key)
    items = read_inputs(options.files)
    scorer, tokenizer = base_scorer(args.reference, key, mark)
    prompts = [prompt if prompt is not None else args.prompt for _, _, prompt in items]
    scores, joint = scorer.score_texts(tokenizer, [t for _, t, _ in items], prompts)
    results = []
    for (source, _, _), score in zip(items, scores):
        verdict = None if score.num_tokens_scored < config.min_tokens else bool(score.p_value <= config.fpr)
        results.append(
            {
                "source": source,
                **score.to_dict(),
                "watermarked": verdict,
                "key_id": key.key_id,
                "mark_id": mark_id_of(key),
                "test": "gaussmark",
                # exact for one text over the draw of the key; one key's related texts share an offset (README)
                "p_value_kind": "exact over keys",
            }
        )
    if options.json:
        for result in results:
            sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        return None
    rows = [
        {
            "source": r["source"],
            "watermarked": r["watermarked"],
            "statistic": round(r["statistic"], 2),
            "p_value": r["p_value"],
            "tokens": r["num_tokens_scored"],
        }
        for r in results
    ]
    text = format_table(rows) + (
        f"\nall {len(results)} inputs together: statistic {joint.statistic:.2f}, p-value {joint.p_value:.3g} "
        f"(exact over keys: N(0,1) for text written without the marked weights; fpr {config.fpr:g}; "
        "related texts share one offset per key, so a corpus can be flagged above the rate: see the README)"
    )
    data = {"results": results, "joint": joint.to_dict()}
    return CommandResult(data=data, text=text)


def mark_id_of(key) -> str:
    return (key.weight_mark or {}).get("mark_id", "")


def trace_main(args: TraceArguments, config, options: argparse.Namespace) -> CommandResult:
    from pretrain.generation import load_model_and_tokenizer, locate_model
    from watermark.errors import ConfigError, IncompatibleModelError, TokenizerError
    from watermark.keys import load_key, tokenizer_digest
    from watermark.trace import black_box, white_box
    from watermark.weights import WeightMark, check_comparable

    key = load_key(args.key)
    mark = WeightMark.from_key(key)
    if config.samples and not args.reference:
        raise ConfigError("trace --samples: the text test needs the released weights (--reference DIR)")
    location = locate_model(args.model)
    try:
        digest, vocab = tokenizer_digest(location.tokenizer_dir or location.model_dir)
    except TokenizerError:
        digest = None  # weights only: the white-box test still compares the tensors
    if digest is not None and digest != key.tokenizer_digest:
        raise IncompatibleModelError(
            f"{args.model}: its tokenizer ({vocab} tokens, {digest[:19]}…) is not the marked release's "
            f"({key.tokenizer_digest[:19]}…); its vocabulary cannot be compared with the mark"
        )
    if digest is not None:
        suspect, tokenizer = load_model_and_tokenizer(args.model)
    else:
        from transformers import AutoModelForCausalLM

        suspect, tokenizer = AutoModelForCausalLM.from_pretrained(location.model_dir).eval(), None
    check_comparable(suspect, mark, str(args.model))
    base, base_tokenizer = load_base(args.reference, key, mark) if args.reference else (None, None)
    tokenizer = tokenizer or base_tokenizer  # a weights-only suspect generates with the release's tokenizer
    data = {"model": str(args.model), "key_id": key.key_id, "mark_id": mark_id_of(key), "fpr": config.fpr}
    data["white_box"] = white_box(suspect, key, mark, base=base, fpr=config.fpr)
    if config.samples:
        scorer = scorer_on_base(base, tokenizer, key, mark)
        data["black_box"] = black_box(
            scorer,
            tokenizer,
            _calibration_prompts(config.samples),
            _plain_generate(suspect, tokenizer, 0),
            tokens=config.sample_tokens,
            fpr=config.fpr,
        )
    data["p_value"] = data["white_box"]["p_value"]
    data["derived"] = data["white_box"]["derived"]
    lines = [
        f"white-box: statistic {data['white_box']['statistic']:.2f}, p-value {data['white_box']['p_value']:.3g} "
        f"(log10 {data['white_box']['log10_p_value']:.1f}), mark retained {data['white_box']['retained']:.2f} "
        f"({data['white_box']['method']}, {mark.num_marked} weights)"
    ]
    if "black_box" in data:
        b = data["black_box"]
        lines.append(
            f"black-box: {b['samples']} texts, joint statistic {b['statistic']:.2f}, p-value {b['p_value']:.3g}; "
            f"single texts detected at {b['text_fpr']:g}: {b['texts_detected']:.0%}"
        )
    lines.append(
        f"verdict at fpr {config.fpr:g}: "
        + ("derived from the marked release" if data["derived"] else "no evidence it derives from the release")
    )
    return CommandResult(data=data, text="\n".join(lines))


# -- survival of the mark under offline modification --------------------------------------------
QUICK_WEIGHT_ATTACKS = ["none", "finetune:100:1e-4", "lora:100:1e-4", "int8", "wanda:0.5"]


@dataclass
class SurviveArguments:
    model: str = field(default=None, metadata={"help": "the released (marked) model directory"})
    key: str = field(default=None, metadata={"help": "key file holding its weight mark"})
    attacks: list[str] = field(
        default_factory=lambda: list(QUICK_WEIGHT_ATTACKS),
        metadata={
            "help": "weight attacks: none, finetune:STEPS[:LR], lora:STEPS[:LR], int8, wanda:SPARSITY, "
            "average:WEIGHT (needs --other_model); WEIGHT+TEXT_ATTACK (e.g. int8+word_substitution:0.2) also scores "
            "the generations after a text attack"
        },
    )
    texts: int = field(default=24, metadata={"help": "200-token plain-generate texts per attack"})
    other_model: str = field(
        default=None, metadata={"help": "an independently trained model of the same shape, for average:WEIGHT"}
    )

    def __post_init__(self):
        if not self.model or not self.key:
            raise ValueError("model and key: both required")
        if self.texts < 2:
            raise ValueError(f"texts: must be >= 2, got {self.texts}")
        from watermark.errors import ConfigError
        from watermark.weight_attacks import parse_modification

        try:
            for spec in self.attacks:
                parse_modification(spec)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


def add_survive_verb(verbs) -> None:
    survive = verbs.add_parser(
        "survive",
        help="apply weight attacks (fine-tuning, LoRA, int8, Wanda, averaging) to a release and trace each",
        description="For each attack on the released weights: the share of 200-token plain-generate texts the "
        "text test detects at FPR 1e-4 and 1e-2, their joint p-value, the white-box trace p-value and the share of "
        "the mark left in the weights. Fine-tuning and LoRA use clean text the model never saw (installed "
        "packages' descriptions).",
        dataclass_types=(SurviveArguments,),
    )
    survive.set_defaults(handler=survive_main)


def measure_attack(
    label, attacked, scorer, tokenizer, key, mark, base, prompts, weights=None, validation=(), text_attacks=()
) -> list[dict]:
    """Rows of the survival table for `attacked`: its plain 200-token generations as they are and under each
    text attack in `text_attacks` ((Attack, Attacker) pairs, applied on top), each scored by the text test, and
    the white-box trace of its weights (the same in every row: text edits do not touch the weights)."""
    import numpy as np

    from watermark.trace import white_box

    trace = white_box(weights if weights is not None else attacked, key, mark, base=base)
    completions = _plain_generate(attacked, tokenizer, 0)(list(prompts), 200)
    common = {"trace_log10_p": round(trace["log10_p_value"], 1), "mark_retained": round(trace["retained"], 3)}
    if validation:
        common["validation_ppl"] = round(validation_perplexity(attacked, tokenizer, validation), 1)
    rows = [{"attack": label, **_text_detection(scorer, tokenizer, prompts, completions), **common}]
    for index, (text_attack, attacker) in enumerate(text_attacks):
        rng = np.random.default_rng([index, len(prompts)])
        edited = [
            tokenizer(
                attacker.apply(text_attack, tokenizer.decode(ids, skip_special_tokens=True), rng),
                add_special_tokens=False,
            )["input_ids"]
            for ids in completions
        ]
        detection = _text_detection(scorer, tokenizer, prompts, edited)
        rows.append({"attack": f"{label}+{text_attack.label}", **detection, **common})
    return rows


def text_statistics(scorer, tokenizer, prompts, completions) -> list[float]:
    """The text test's statistic (N(0, 1) under the null) for each prompt's completion."""
    from watermark.trace import black_box

    return black_box(scorer, tokenizer, prompts, lambda _prompts, _tokens: completions, fpr=1e-6)["text_statistics"]


def _text_detection(scorer, tokenizer, prompts, completions) -> dict:
    """Share of texts the text test detects at FPR 1e-4 and 1e-2, their median statistic and joint p-value."""
    import numpy as np

    from watermark.trace import black_box
    from watermark.weights import log10_normal_sf

    texts = black_box(scorer, tokenizer, prompts, lambda _prompts, _tokens: completions, tokens=200, fpr=1e-6)
    statistics = np.array(texts["text_statistics"])
    return {
        "detected_at_1e-4": float((statistics >= 3.719016485).mean()),  # one-sided N(0,1) quantiles
        "detected_at_1e-2": float((statistics >= 2.326347874).mean()),
        "median_statistic": round(float(np.median(statistics)), 2),
        "joint_log10_p": round(log10_normal_sf(texts["statistic"]), 1),
    }


def text_attackers(specs, tokenizer, human_texts) -> list:
    """(Attack, Attacker) for each text attack to apply on top of a weight attack, on the model's tokenizer."""
    from watermark.attacks import Attacker, human_word_pool, parse_attack

    attacks = [parse_attack(spec) for spec in specs]
    attacks = [attack for attack in attacks if attack.name != "none"]
    if not attacks:
        return []
    attacker = Attacker(
        human_word_pool(human_texts),
        human_texts,
        lambda text: tokenizer(text, add_special_tokens=False)["input_ids"],
        lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True),
        len(tokenizer),
    )
    return [(attack, attacker) for attack in attacks]


def check_suite(specs, key, other_model) -> list:
    """The parsed `WEIGHT[+TEXT]` specs, or a ConfigError before any model loads."""
    from watermark.errors import ConfigError
    from watermark.weight_attacks import parse_modification

    if not key.weight_mark:
        raise ConfigError(
            f"weight attacks ({specs[0]}): key {key.key_id} holds no weight mark (mark a release with watermark embed)"
        )
    modifications = [parse_modification(spec) for spec in specs]
    if any(weight.kind == "average" for weight, _ in modifications) and not other_model:
        raise ConfigError("average: needs --other_model (an independently trained model of the same shape)")
    return modifications


def survival_suite(model_dir, key, specs, texts: int, other_model=None) -> list[dict]:
    """Each `WEIGHT[+TEXT]` attack on the release in `model_dir`: the survival table's rows, in spec order
    (one generation per weight attack; its text attacks score edited copies of those generations)."""
    from mintline.pipeline.corpus import human_passages
    from pretrain.generation import load_model_and_tokenizer
    from pretrain.sparsity.posttrain import prune_wanda
    from watermark.evaluate import prompts_from
    from watermark.weight_attacks import apply_weight_attack, dequantized, package_descriptions, token_blocks
    from watermark.weights import WeightMark

    modifications = check_suite(specs, key, other_model)
    mark = WeightMark.from_key(key)
    base, tokenizer = load_base(model_dir, key, mark)
    released, _ = load_model_and_tokenizer(model_dir)
    other = load_model_and_tokenizer(other_model)[0] if other_model else None
    scorer = scorer_on_base(base, tokenizer, key, mark)
    passages = human_passages()
    prompts = prompts_from(passages[:400], texts)
    blocks = token_blocks(tokenizer, package_descriptions())
    calibration = token_blocks(tokenizer, passages[-400:-200])[:32]
    on_top: dict = {}  # weight attack -> the text attacks to apply to its generations, in spec order
    for weight, text in modifications:
        on_top.setdefault(weight, [])
        if text.name != "none" and text.label not in on_top[weight]:
            on_top[weight].append(text.label)
    rows = []
    for weight, text_specs in on_top.items():
        prune = (lambda m, s: prune_wanda(m, calibration, s)) if weight.kind == "wanda" else None
        attacked = apply_weight_attack(weight, released, blocks=blocks, prune=prune, other=other)
        weights = dequantized(attacked, released) if weight.kind == "int8" else None
        attackers = text_attackers(text_specs, tokenizer, passages)
        rows += measure_attack(
            weight.label, attacked, scorer, tokenizer, key, mark, base, prompts, weights, text_attacks=attackers
        )
    return rows


def survive_main(args: SurviveArguments, options: argparse.Namespace) -> CommandResult:
    from watermark.keys import load_key

    key = load_key(args.key)
    rows = survival_suite(args.model, key, args.attacks, args.texts, args.other_model)
    data = {"model": str(args.model), "key_id": key.key_id, "mark_id": mark_id_of(key), "attacks": rows}
    return CommandResult(data=data, text=format_table(rows))
