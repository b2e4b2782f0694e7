"""`mintline align`: RLHF-lite — active preference labelling, then DPO with TRL.

    mintline align --config recipe.yaml                 # = mintline align run: pairs → labels → DPO
    mintline align run --policy_model runs/default/pretrain/model --corpus runs/default/prepare/data --budget 200
    mintline align dpo --model_name_or_path M --dataset_name prefs.jsonl --output_dir out --beta 0.1 --use_peft
    mintline align reward --model_name_or_path M --dataset_name prefs.jsonl --output_dir rm
    mintline align benchmark --pairs prefs.jsonl.gz --strategies random,fisher,bald --budget 400 --seeds 10 --json

`dpo` and `reward` are TRL's own script parsers (every DPOConfig / RewardConfig / ModelConfig
flag works); `run` and `benchmark` take mintline's dataclass configs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mintline import layout
from mintline.console import CommandResult, format_table, format_value


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    from alignment.benchmark import BenchmarkConfig
    from alignment.bradley_terry import RewardModelConfig
    from alignment.candidates import CandidateConfig
    from alignment.loop import ActiveLoopConfig
    from alignment.reward_models import RewardFamilyConfig
    from alignment.stage import AlignStageConfig
    from mintline.argparsing import MintlineParser, add_lazy_parser
    from mintline.journal import RunArguments

    if subparsers is None:
        parser = MintlineParser(prog="mintline align")
    else:
        parser = subparsers.add_parser("align", help="RLHF-lite: active preference labelling and DPO with TRL")
    group = parser.add_subparsers(parser_class=MintlineParser, dest="verb")
    parser.default_subcommand = "run"

    run = group.add_parser(
        "run",
        help="candidate pairs → active labelling → DPO (the whole stage)",
        dataclass_types=(
            AlignStageConfig,
            CandidateConfig,
            ActiveLoopConfig,
            RewardModelConfig,
            RewardFamilyConfig,
            RunArguments,
        ),
    )
    run.set_defaults(handler=run_main)

    # TRL's configs import torch and transformers (~20 s on a busy machine): build these two
    # parsers only when chosen, so `mintline align --help` and `align run` start in a second.
    add_lazy_parser(group, "dpo", "DPO with TRL on a preference JSONL", build_dpo_parser)
    add_lazy_parser(group, "reward", "full-model reward model with TRL's RewardTrainer", build_reward_parser)

    bench = group.add_parser(
        "benchmark",
        help="pool-based label-efficiency benchmark of acquisition strategies",
        dataclass_types=(BenchmarkConfig, RewardModelConfig, RewardFamilyConfig),
    )
    bench.set_defaults(handler=benchmark_main)
    return parser


def build_dpo_parser(group):
    from alignment import dpo
    from alignment.trl_common import launch_option_names

    parser = dpo.make_parser(group)
    parser.launcher_keys = launch_option_names  # a `trl dpo` recipe's `num_processes: 2` etc.
    parser.set_defaults(handler=dpo_main)
    return parser


def build_reward_parser(group):
    from alignment import reward
    from alignment.trl_common import launch_option_names

    parser = reward.make_parser(group)
    parser.launcher_keys = launch_option_names
    parser.set_defaults(handler=reward_main)
    return parser


# -- run ---------------------------------------------------------------------------------------
def run_main(stage, candidates, loop, rm_config, family, run, options) -> CommandResult:
    from alignment.stage import config_dict, run_align_stage
    from mintline.journal import Journal

    if not stage.output_dir:
        stage.output_dir = str(layout.stage_dir(run.run_dir, layout.ALIGN))
    inputs = {"policy_model": stage.policy_model}
    for name in ("prompts_file", "corpus", "eval_corpus"):
        if getattr(stage, name):
            inputs[name] = getattr(stage, name)
    inputs = {k: v for k, v in inputs.items() if Path(v).exists()}
    journal = Journal(run.run_dir)
    with journal.stage(
        "align",
        config=config_dict(stage, candidates, loop, rm_config, family),
        inputs=inputs,
        outputs=[Path(stage.output_dir) / "model"],
        force=run.force,
    ) as record:
        if record.skipped:
            return CommandResult(
                data={"skipped": True, **record.figures}, text=f"align: up to date ({journal.path}); --force to redo"
            )
        figures = run_align_stage(stage, candidates, loop, rm_config, family=family)
        record.figures.update(figures)
        finished = figures["state"] == "done"
        if not finished:
            record.status = "waiting"
    if not finished:
        text = f"align: waiting for {figures['waiting_for']} labels ({figures['labels_received']} of {figures['labels_requested']} in); run again later"
    else:
        dpo = figures["dpo"]
        text = (
            f"align: {figures['labels_received']} labels ({figures['labels_skipped']} skipped, {figures['pseudo_labels']} pseudo) "
            f"in {figures['rounds_this_call']} rounds of '{figures['strategy']}'; DPO {dpo['steps']} steps, "
            f"{dpo_accuracy_text(dpo)}; "
            f"{dpo['saved']} in {figures['model_dir']}"
        )
    return CommandResult(data=figures, text=text)


def dpo_accuracy_text(dpo: dict) -> str:
    """The DPO'd policy's implicit-reward accuracy, on the gold-judged pairs where the run has them
    (noise-free and more of them) and else on the labelled pairs held out of DPO."""
    verdict = dpo.get("verdict") or {}
    if verdict.get("ci"):
        low, high = verdict["ci"]
        figure = (
            f"DPO acc {format_value(verdict['accuracy'])} [{low:.2f}, {high:.2f}] on {verdict['pairs']} "
            f"{verdict['measured_on']}"
        )
        return figure if verdict["helped"] else f"{figure} — DID NOT BEAT the pre-DPO policy (0.5)"
    if dpo.get("gold_implicit_reward_accuracy") is not None:
        return (
            f"DPO acc {format_value(dpo['gold_implicit_reward_accuracy'])} on {dpo.get('gold_eval_pairs')} gold pairs"
        )
    return f"DPO acc {format_value(dpo.get('heldout_implicit_reward_accuracy'))} on held-out labels"


# -- TRL scripts -------------------------------------------------------------------------------
def dpo_main(script_args, training_args, model_args, dataset_args, options) -> CommandResult | None:
    from alignment.dpo import main

    if _relaunch_under_accelerate("dpo", options):
        return None
    figures = main(script_args, training_args, model_args, dataset_args)
    return CommandResult(data=figures)


def reward_main(script_args, training_args, model_args, dataset_args, options) -> CommandResult | None:
    from alignment.reward import main

    if _relaunch_under_accelerate("reward", options):
        return None
    figures = main(script_args, training_args, model_args, dataset_args)
    return CommandResult(data=figures)


def _relaunch_under_accelerate(command: str, options) -> bool:
    """A recipe with `accelerate launch` keys runs this command again under `accelerate launch`, as `trl dpo` does.

    True when it did (the launched run printed its own result); a failed launched run is an error here.
    """
    from alignment.errors import AlignmentError
    from alignment.trl_common import launch_through_accelerate, under_accelerate

    if not options.launch_args or under_accelerate():
        return False
    code = launch_through_accelerate(options.launch_args, ["mintline", "align", command, *options.argv])
    if code:
        raise AlignmentError(f"align {command}: the run under `accelerate launch` failed (exit {code})")
    return True


# -- benchmark ---------------------------------------------------------------------------------
def benchmark_main(config, rm_config, family, options) -> CommandResult:
    from alignment.benchmark import run_benchmark
    from alignment.report import plot_curves, summarise

    results = run_benchmark(config, rm_config, family=family)
    summary = summarise(results, config.budget)
    if config.plot:
        summary["plot"] = plot_curves(
            summary,
            config.plot,
            f"{Path(config.pairs).name}: {config.features}, {config.seeds} seeds, noise {config.label_noise}",
        )
    data = {
        "label_ratio": summary["label_ratio"],
        "label_ratio_ci": summary["label_ratio_ci"],
        "flat": summary["flat"],
        **({"refused": summary["refused"]} if "refused" in summary else {}),
        "target_accuracy": summary["target_accuracy"],
        "budget": config.budget,
        "seeds": config.seeds,
        "features": config.features,
        "label_noise": config.label_noise,
        "pairs": results["rows"],
        "skipped_rows": results["skipped_rows"],
        "test_size": results["test_size"],
        "pool_size": results["pool_size"],
        "seconds_per_label": summary["seconds_per_label"],
        "seconds_per_round": summary["seconds_per_round"],
        "reward_model": family.reward_model,
        "length_matched_accuracy": summary["length_matched_accuracy"],
        "length_matched_test_pairs": results["length_matched_test_pairs"],
        "best_strategy": summary["best_strategy"],
        **{
            k: summary[k]
            for k in ("ceiling", "system_gain", "feature_gain", "pseudo_labels_per_seed", "plot")
            if k in summary
        },
        "flatness": summary["flatness"],
        "curves": summary["curves"],
    }
    return CommandResult(data=data, text=benchmark_text(data))


def benchmark_text(data: dict) -> str:
    rows = []
    for name, curve in data["curves"].items():
        ratio = data["label_ratio"].get(name)
        interval = data["label_ratio_ci"].get(name) if data["label_ratio_ci"] else None
        steps = curve["accuracy_mean"]
        rows.append(
            {
                "strategy": name,
                "acc@25%": steps[max(0, len(steps) // 4 - 1)],
                "acc@50%": steps[max(0, len(steps) // 2 - 1)],
                "acc@100%": steps[-1],
                "label ratio": ""
                if name not in data["label_ratio"]
                else "refused"
                if data["flat"]
                else "> 1"
                if ratio is None
                else ratio,
                "95% CI": "" if not interval else f"[{_fmt(interval[0])}, {_fmt(interval[1])}]",
                "s/label": data["seconds_per_label"].get(name, ""),
                "s/round": data["seconds_per_round"].get(name) or "",
                "acc (length-matched)": data["length_matched_accuracy"].get(name, ""),
            }
        )
    lines = [
        format_table(rows),
        f"target = random's accuracy at the full budget ({data['budget']} labels): {data['target_accuracy']}; "
        f"test {data['test_size']} pairs, pool {data['pool_size']}, {data['seeds']} seeds, features {data['features']}",
    ]
    if "ceiling" in data:
        ceiling = data["ceiling"]
        lines.append(
            f"ceiling ({data['reward_model']} on every pool label): {ceiling['accuracy']} {ceiling['ci'] or ''}; "
            f"random at {data['budget']} labels: {ceiling['full_budget_random']}"
        )
    lines.append(
        f"random's curve from {data['flatness']['half_budget']} to {data['budget']} labels: "
        f"{data['flatness']['gain_half_to_full']:+.4f} {data['flatness']['gain_ci']} "
        f"({'flat' if data['flat'] else 'still rising'})"
    )
    if data["flat"]:
        lines.append("no ratios: " + data["refused"])
    if "system_gain" in data:
        system = data["system_gain"]
        lines.append(
            f"system gain ({system['reward_model']} + {system['strategy']} vs random + "
            f"{system['baseline']['reward_model']} on {system['baseline']['features']}): label ratio "
            f"{_flat_ratio_text(system.get('label_ratio_at_most')) if system['baseline_flat'] else _fmt(system['label_ratio'])} "
            f"{system['label_ratio_ci'] or ''}; full-budget accuracy {system['system_full_budget_accuracy']} vs "
            f"{system['baseline_full_budget_accuracy']}"
        )
    if "feature_gain" in data:
        gain = data["feature_gain"]
        lines.append(
            f"feature gain (random, {data['features']} vs baseline features): label ratio "
            f"{_flat_ratio_text(gain.get('random_label_ratio_at_most')) if gain['baseline_flat'] else gain['random_label_ratio']} "
            f"{gain['random_label_ratio_ci'] or ''}; full-budget accuracy "
            f"{gain['features_full_budget_accuracy']} vs {gain['baseline_full_budget_accuracy']}"
        )
    if data.get("skipped_rows"):
        lines.append(f"skipped rows: {data['skipped_rows']}")
    if data.get("plot"):
        lines.append(f"plot: {data['plot']}")
    return "\n".join(lines)


def _flat_ratio_text(bound) -> str:
    if bound is None:
        return "refused (baseline flat)"
    return f"<= {bound} (baseline flat, but the first round is already above its full-budget accuracy)"


def _fmt(value) -> str:
    return "> 1" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    parser = make_parser()
    import sys

    from mintline.cli import main as cli_main

    raise SystemExit(cli_main(["align", *sys.argv[1:]]))
