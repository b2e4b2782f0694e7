"""`mintline run --STAGE.OPTION VALUE`: which tokens are values and which are the next option."""

from __future__ import annotations

from mintline.commands.run import make_parser
from mintline.pipeline.config import is_option, load_run_config, parse_overrides


def test_negative_numbers_are_values_and_short_flags_are_options():
    assert is_option("--align.budget") and is_option("-q") and is_option("--json")
    assert not is_option("-1") and not is_option("-1e-3") and not is_option("fisher+kcenter") and not is_option("-")
    assert parse_overrides(["--align.strategy", "fisher+kcenter", "--pretrain.seed", "-1"]) == [
        ("align", "strategy", "fisher+kcenter"),
        ("pretrain", "seed", -1),
    ]


def test_a_short_flag_after_a_stage_option_is_not_taken_as_its_value(tmp_path):
    # `-q` used to be swallowed as a second value of --align.strategy, which made the strategy a list
    *_, options = make_parser().parse_args_and_config(["--align.strategy", "fisher+kcenter", "-q"])
    assert options.stage_options == ["--align.strategy", "fisher+kcenter"]
    assert load_run_config(None, str(tmp_path), options.stage_options).section("align")["strategy"] == "fisher+kcenter"
