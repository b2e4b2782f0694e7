"""The frugal recipe: Muon's parameter split, dense unchanged, frugal learns, the CLI, the benchmark's JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from functools import partial

import torch
from test_engine import nano_args as engine_nano_args
from transformers import AutoModelForCausalLM, get_scheduler

from pretrain.config import PretrainArguments
from pretrain.data import document_position_ids
from pretrain.engine import PretrainTrainer, pretrain, run_identity
from pretrain.optimizers import MuonWithAdamW, build_optimizer, split_parameters
from pretrain.presets import build_config
from pretrain.recipes import RECIPES, apply_recipe, lr_factor
from pretrain.time_to_target import crossing


def nano_model():
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(build_config("nano", 512, 1, 2, 0))


def nano_args(prepared_data, **overrides) -> PretrainArguments:
    """The engine tests' nano run, shorter and with rarer checkpoints and logs."""
    defaults = dict(max_steps=20, warmup_steps=2, eval_blocks=8, save_steps=1000, logging_steps=5)
    return engine_nano_args(prepared_data, **{**defaults, **overrides})


def test_document_positions_keep_each_document_to_itself():
    # token 2 is EOS: the block holds the tail of one document, a whole one, and the head of a third
    block = torch.tensor([[7, 8, 2, 1, 9, 10, 11, 2, 1, 12, 13]])
    positions = document_position_ids(block, eos_token_id=2)
    assert positions.tolist() == [[0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2]]
    model = nano_model().eval()
    with torch.no_grad():
        packed = model(input_ids=block, position_ids=positions, use_cache=False).logits
        with_cache = model(input_ids=block, position_ids=positions).logits
        alone = model(input_ids=block[:, 3:8]).logits
        across = model(input_ids=block).logits
    # the middle document's logits are those of the document on its own: nothing leaks across EOS
    torch.testing.assert_close(packed[:, 3:8], alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(across[:, 3:8], alone, atol=1e-3)  # plain packing does attend across
    # with a cache transformers does not look for packed sequences: the positions alone do not isolate
    assert not torch.allclose(with_cache[:, 3:8], alone, atol=1e-3)


def test_muon_takes_only_the_hidden_matrices():
    model = nano_model()
    hidden, decayed, plain = split_parameters(model)
    named = {id(p): n for n, p in model.named_parameters()}
    assert hidden and all(p.ndim == 2 and ".layers." in named[id(p)] for p in hidden)
    expected = {n for n, p in model.named_parameters() if p.ndim == 2 and ".layers." in n}
    assert {named[id(p)] for p in hidden} == expected  # q, k, v, o, gate, up, down of every layer
    assert [named[id(p)] for p in decayed] == ["model.embed_tokens.weight"]  # tied to lm_head: once, AdamW
    assert plain and all(p.ndim == 1 for p in plain)  # norm gains

    optimizer = build_optimizer("muon", model, 1e-3, 0.1)
    assert isinstance(optimizer, MuonWithAdamW)
    muon_ids = {id(p) for group in optimizer.muon.param_groups for p in group["params"]}
    assert muon_ids == {id(p) for p in hidden}
    adamw_ids = {id(p) for group in optimizer.adamw.param_groups for p in group["params"]}
    assert adamw_ids.isdisjoint(muon_ids) and len(adamw_ids | muon_ids) == len(list(model.parameters()))


def test_muon_step_orthogonalises_and_state_round_trips():
    model = nano_model()
    optimizer = build_optimizer("muon", model, 1e-3, 0.0)
    ids = torch.randint(0, 512, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    optimizer.step()
    change = model.model.layers[0].mlp.up_proj.weight.detach() - before
    # an orthogonalised update has (roughly) equal singular values over the gradient's rank (32 tokens here)
    singular = torch.linalg.svdvals(change)[:16]
    raw = torch.linalg.svdvals(model.model.layers[0].mlp.up_proj.weight.grad)[:16]
    assert singular.max() / singular.min() < 3 < raw.max() / raw.min()
    # the fp32 iteration is torch's own (bf16) one, to bf16's precision
    from torch.optim._muon import _zeropower_via_newtonschulz

    from pretrain.optimizers import newton_schulz

    matrix = torch.randn(48, 96)
    reference = _zeropower_via_newtonschulz(matrix, (3.4445, -4.775, 2.0315), 5, 1e-7).float()
    assert torch.allclose(newton_schulz(matrix, (3.4445, -4.775, 2.0315), 5, 1e-7), reference, atol=0.05)
    again = build_optimizer("muon", model, 1e-3, 0.0)
    again.load_state_dict(optimizer.state_dict())
    key = model.model.layers[0].mlp.up_proj.weight
    assert torch.equal(again.state[key]["momentum_buffer"], optimizer.state[key]["momentum_buffer"])


def test_dense_schedule_is_the_trainers_cosine():
    # lr_factor(cosine, horizon 1) is what the dense recipe would get if it went through the recipe code
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    stock = get_scheduler("cosine_with_min_lr", optimizer, 5, 50, scheduler_specific_kwargs={"min_lr_rate": 0.1})
    for step in range(50):
        ours = lr_factor(step, warmup_steps=5, total_steps=50, min_ratio=0.1)
        assert math.isclose(stock.lr_lambdas[0](step), ours, rel_tol=1e-12, abs_tol=1e-12)
    assert not RECIPES["dense"].changes_engine


def test_dense_recipe_is_the_engine_as_it_was(prepared_data, tmp_path):
    args = nano_args(prepared_data, max_steps=6)
    assert args.recipe == "dense"
    # a dense run's identity (and so its checkpoints' resumability) does not mention recipes
    assert "recipe" not in run_identity(args, "t", "d", 1)["config"]
    seen = {}
    original = PretrainTrainer.create_scheduler

    def spy(self, num_training_steps, optimizer=None):
        scheduler = original(self, num_training_steps, optimizer)
        seen["optimizer"], seen["scheduler"] = self.optimizer, scheduler
        return scheduler

    PretrainTrainer.create_scheduler = spy
    try:
        first = pretrain(args, tmp_path / "a")
    finally:
        PretrainTrainer.create_scheduler = original
    inner = getattr(seen["optimizer"], "optimizer", seen["optimizer"])
    assert type(inner) is torch.optim.AdamW  # the Trainer's own fused AdamW, not the recipe's builder
    assert math.isclose(inner.param_groups[0]["initial_lr"], 3e-3)
    again = pretrain(args, tmp_path / "b")
    assert first["eval_loss"] == again["eval_loss"] and first["recipe"] == "dense"


def test_frugal_schedule_decays_by_a_third_then_holds_the_floor():
    frugal = RECIPES["frugal"]
    factor = partial(
        lr_factor,
        warmup_steps=30,
        total_steps=1200,
        min_ratio=0.1,
        schedule=frugal.schedule,
        horizon=frugal.horizon,
        decay_fraction=frugal.decay_fraction,
    )
    assert factor(15) == 0.5 and factor(30) == factor(326) == 1.0  # warm-up, then stable
    decay_start = 400 - round((400 - 30) * frugal.decay_fraction)  # the last fifth of the first third
    assert factor(decay_start) == 1.0 > factor(decay_start + 1) > factor(399) > 0.1
    assert all(math.isclose(factor(step), 0.1) for step in (400, 800, 1199))  # the floor to the end


def test_frugal_short_halves_the_batch_and_keeps_the_tokens(prepared_data):
    args = nano_args(prepared_data, recipe="frugal_short", max_steps=1200, warmup_steps=30, eval_steps=200)
    short = apply_recipe(args)
    assert short.per_device_batch_size == 4 and short.max_steps == 2400
    assert short.per_device_batch_size * short.max_steps == args.per_device_batch_size * args.max_steps
    assert (short.warmup_steps, short.eval_steps) == (60, 400)
    assert apply_recipe(nano_args(prepared_data)) == nano_args(prepared_data)
    frugal = nano_args(prepared_data, recipe="frugal")
    assert apply_recipe(frugal) == frugal  # dense's batches
    # checkpoints resume only the same recipe, levers included (a name can be re-tuned between versions)
    assert run_identity(frugal, "t", "d", 1)["config"]["recipe"] == asdict(RECIPES["frugal"])


def test_frugal_recipe_trains_with_muon_and_lowers_the_loss(prepared_data, tmp_path):
    figures = pretrain(nano_args(prepared_data, recipe="frugal", max_steps=10), tmp_path / "out")
    assert figures["recipe"] == "frugal" and figures["steps"] == 10  # the same batches as dense
    assert figures["tokens_trained"] == 10 * 8 * 64
    assert figures["eval_loss"] < figures["initial_eval_loss"] - 0.5


def test_frugal_recipe_with_pruning_shrinks_muon_state(prepared_data, tmp_path):
    from pretrain.sparsity.config import SparsityArguments

    sparsity = SparsityArguments(
        prune_heads=0.5, prune_neurons=0.5, prune_start=0.2, prune_end=0.4, importance_window=2
    )
    args = nano_args(prepared_data, recipe="frugal", max_steps=6, eval_blocks=8)
    figures = pretrain(args, tmp_path / "out", sparsity=sparsity)
    assert figures["sparsity"]["heads_per_layer_after"] == 2 and figures["eval_loss"] < figures["initial_eval_loss"]


def test_unknown_recipe_is_one_line_exit_2(cli, run_dir):
    run = cli("pretrain", "--run_dir", run_dir, "--recipe", "bogus", "-q")
    assert run.code == 2
    assert "invalid choice" in run.err and "frugal" in run.err
    assert run.err.strip().count("\n") == 0 and "Traceback" not in run.err


def test_benchmark_function_returns_the_json_keys(prepared_data, tmp_path):
    from benchmarks.frugal import run_benchmark

    result = run_benchmark(
        model="nano",
        steps=4,
        batch=4,
        block=32,
        eval_every=1,
        eval_blocks=4,
        arms=["muon", "frugal", "isolated_docs"],
        out=tmp_path / "out",
        data_dir=prepared_data["data"],
        tokenizer_dir=prepared_data["tokenizer"],
        log=lambda message: None,
    )
    for key in (
        "time_to_target_ratio",
        "flops_to_target_ratio",
        "cpu_seconds_to_target_ratio",
        "energy_to_target_ratio",
        "frugal_final_loss",
        "dense_final_loss",
        "ablation",
    ):
        assert key in result
    assert set(result["ablation"]) == {"dense", "muon", "frugal", "isolated_docs"}
    assert result["ablation"]["dense"]["time_to_target_ratio"] == 1.0
    assert (tmp_path / "out" / "frugal_curves.png").stat().st_size > 1000


def test_crossing_interpolates_between_the_evaluations_around_the_target():
    points = [{"loss": 6.0, "wall": 0.0, "steps": 0}, {"loss": 5.0, "wall": 10.0, "steps": 4}]
    points.append({"loss": 4.0, "wall": 30.0, "steps": 8})
    assert crossing(points, 4.5) == {"wall": 20.0, "steps": 6.0}  # half-way between 5.0 and 4.0
    assert crossing(points, 6.5) == points[0]  # reached before training
    assert crossing(points, 3.9) is None


def test_training_clock_continues_a_resumed_run():
    from types import SimpleNamespace

    from pretrain.time_to_target import TrainingClock

    clock = TrainingClock()
    state = SimpleNamespace(log_history=[{"eval_loss": 5.0, "training_seconds": 12.5, "step": 40}, {"loss": 4.9}])
    clock.on_train_begin(None, state, None)
    clock.on_step_begin(None, state, None)
    clock.on_step_end(None, state, None)
    assert 12.5 < clock.seconds < 13.5


def test_time_to_target_against_a_dense_baseline(prepared_data, tmp_path):
    dense = pretrain(nano_args(prepared_data, max_steps=8, eval_steps=2), tmp_path / "dense")
    curve = dense["loss_curve"]
    assert [point["step"] for point in curve] == [0, 2, 4, 6, 8]
    seconds = [point["training_seconds"] for point in curve]
    assert seconds[0] == 0 and all(later > earlier for earlier, later in zip(seconds, seconds[1:]))
    assert "time_to_target" not in dense  # nothing to measure against

    target = round(curve[0]["eval_loss"] - 0.3, 4)  # a loss both runs reach early
    args = nano_args(prepared_data, recipe="frugal", max_steps=8, eval_steps=2, target_loss=target)
    frugal = pretrain(replace(args, compare_to=str(tmp_path / "dense")), tmp_path / "frugal")
    reached = frugal["time_to_target"]
    assert reached["reached"] and reached["target_loss"] == target
    assert reached["baseline"] == str(tmp_path / "dense") and reached["baseline_final_loss"] == round(
        dense["eval_loss"], 4
    )
    dense_at = crossing([{**p, "loss": p["eval_loss"]} for p in curve], target)
    assert math.isclose(reached["baseline_training_seconds"], dense_at["training_seconds"], abs_tol=0.01)
    # the seconds are rounded to 0.01 and a nano run's are ~0.1 s, so the ratio of the rounded figures is coarse
    expected = reached["training_seconds"] / reached["baseline_training_seconds"]
    assert math.isclose(reached["time_ratio"], expected, rel_tol=0.15)

    # without --target_loss the target is the baseline's final loss
    default = pretrain(replace(args, target_loss=None, compare_to=str(tmp_path / "dense")), tmp_path / "again")
    assert default["time_to_target"]["target_loss"] == round(dense["eval_loss"], 4)


def test_compare_to_without_a_finished_run_is_one_line_exit_2(cli, run_dir, tmp_path):
    run = cli("pretrain", "--run_dir", run_dir, "--compare_to", str(tmp_path / "nowhere"), "-q")
    assert run.code == 2 and "compare_to" in run.err and "log_history.json" in run.err
    assert run.err.strip().count("\n") == 0 and "Traceback" not in run.err


def test_target_loss_must_be_a_positive_loss(cli, run_dir):
    run = cli("pretrain", "--run_dir", run_dir, "--target_loss", "nan", "-q")
    assert run.code == 2 and "target_loss: must be > 0" in run.err
    assert run.err.strip().count("\n") == 0 and "Traceback" not in run.err
