"""`mintline align` as a command group: `run` is the default verb; bad configs stop before any work."""

from __future__ import annotations


def test_align_with_only_a_config_means_align_run(cli, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("budget: 10\nstrategy: fisher+kcenter\nfeatures: stats\n")
    result = cli("align", "--config", recipe)
    assert result.code == 2 and result.err.count("\n") == 1
    assert "policy_model: required" in result.err


def test_run_rejects_unknown_keys_strategies_and_backends(cli, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("policy_model: m\nbudgett: 10\n")
    assert "unknown option 'budgett'" in cli("align", "--config", recipe).err
    bad_strategy = cli("align", "run", "--policy_model", "m", "--strategy", "oracle")
    assert bad_strategy.code == 2 and "unknown strategy 'oracle'" in bad_strategy.err
    bad_backend = cli("align", "run", "--policy_model", "m", "--backend", "mturk")
    assert bad_backend.code == 2 and "backend: must be one of simulated, labelstudio" in bad_backend.err


def test_run_with_missing_prompts_is_one_line(cli, trained_model_dir, tmp_path):
    result = cli(
        "align",
        "run",
        "--policy_model",
        trained_model_dir,
        "--run_dir",
        tmp_path / "run",
        "--prompts_file",
        tmp_path / "none.txt",
        "--features",
        "stats",
    )
    assert result.code == 2 and result.err.count("\n") == 1 and "prompts: no such file" in result.err
