"""Physical removal of heads and neurons: same function, smaller shapes, optimizer state in step."""

from __future__ import annotations

import pytest
import torch
from sparsity_helpers import tiny_llama

from pretrain.errors import CheckpointError
from pretrain.sparsity.structured import prune_heads, prune_neurons, restore_pruned_shapes, valid_head_counts


def _silence(model, heads: list[int], neurons: list[int]) -> None:
    """Make some heads and neurons contribute nothing, so removing them must not change the output."""
    shape_dim = model.config.head_dim
    with torch.no_grad():
        for layer in model.model.layers:
            for head in heads:
                layer.self_attn.o_proj.weight[:, head * shape_dim : (head + 1) * shape_dim] = 0
            for neuron in neurons:
                layer.mlp.down_proj.weight[:, neuron] = 0


@pytest.mark.parametrize(
    "model_type,heads,kv_heads,silent",
    [
        ("llama", 4, 4, [1, 3]),  # Llama configs need hidden_size % heads == 0: 4 -> 2 heads
        ("llama", 8, 2, [0, 2, 5, 6]),  # grouped-query: two query heads leave each key/value group
        ("mistral", 4, 4, [1]),  # no such rule: 4 -> 3 heads
        ("qwen2", 4, 2, [1, 2]),  # q/k/v biases; one query head per group
    ],
)
def test_removing_silent_heads_and_neurons_keeps_the_output(model_type, heads, kv_heads, silent):
    model = tiny_llama(heads=heads, kv_heads=kv_heads, model_type=model_type).eval()
    per_group = heads // kv_heads
    _silence(model, silent, [3, 50, 77])
    ids = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(input_ids=ids).logits

    kept_heads = torch.tensor([h for h in range(heads) if h not in silent])
    kept_neurons = torch.tensor([n for n in range(128) if n not in (3, 50, 77)])
    prune_heads(model, [kept_heads] * 2)
    shape = prune_neurons(model, [kept_neurons] * 2)

    assert shape.num_heads == heads - len(silent)
    assert shape.num_kv_heads == (kv_heads if per_group > 1 else shape.num_heads)
    assert shape.intermediate_size == 125
    assert model.model.layers[0].self_attn.q_proj.weight.shape == (shape.num_heads * shape.head_dim, 64)
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (shape.num_kv_heads * shape.head_dim, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)


def test_optimizer_state_follows_the_kept_rows():
    model = tiny_llama()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 512, (2, 16))
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    up = model.model.layers[0].mlp.up_proj.weight
    down = model.model.layers[0].mlp.down_proj.weight
    before_up = optimizer.state[up]["exp_avg"].clone()
    before_down = optimizer.state[down]["exp_avg_sq"].clone()
    keep = torch.arange(0, 128, 2)
    prune_neurons(model, [keep] * 2, optimizer)
    assert model.model.layers[0].mlp.up_proj.weight is up  # identity kept: param groups stay valid
    torch.testing.assert_close(optimizer.state[up]["exp_avg"], before_up[keep])
    torch.testing.assert_close(optimizer.state[down]["exp_avg_sq"], before_down[:, keep])
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()  # the optimizer keeps working on the smaller shapes


def test_head_counts_follow_the_config_rules():
    # Llama's config insists hidden_size % heads == 0: 8 heads of a 64-wide model can drop to 4, 2, 1 only.
    assert valid_head_counts(tiny_llama(heads=8, kv_heads=8).config) == [1, 2, 4, 8]
    # grouped-query attention keeps its 2 key/value heads and drops query heads per group
    assert valid_head_counts(tiny_llama(heads=8, kv_heads=2).config) == [2, 4, 8]


def test_restore_pruned_shapes_from_a_checkpoint_config(tmp_path):
    pruned = tiny_llama()
    prune_heads(pruned, [torch.tensor([0, 2])] * 2)
    prune_neurons(pruned, [torch.arange(64)] * 2)
    pruned.save_pretrained(tmp_path)
    fresh = tiny_llama(seed=1)
    assert restore_pruned_shapes(fresh, tmp_path)
    fresh.load_state_dict(pruned.state_dict())  # strict: every shape matches
    assert fresh.config.num_attention_heads == 2 and fresh.config.intermediate_size == 64
    with pytest.raises(CheckpointError, match="more than the model"):
        restore_pruned_shapes(tiny_llama(intermediate=32), tmp_path)


def test_structured_pruning_carries_unstructured_masks_along():
    from pretrain.sparsity.masking import attach_masks, mask_of

    model = tiny_llama()
    generator = torch.Generator().manual_seed(0)
    masks = {f"model.layers.{i}.mlp.down_proj": torch.rand(64, 128, generator=generator) > 0.5 for i in range(2)}
    attached = attach_masks(model, None)
    for name, mask in masks.items():
        attached[name].mask = mask.float()
    keep = torch.arange(0, 128, 2)
    prune_neurons(model, [keep] * 2)
    down = model.model.layers[0].mlp.down_proj
    assert torch.equal(mask_of(down).mask.bool(), masks["model.layers.0.mlp.down_proj"][:, keep])
    assert not down.weight[~mask_of(down).mask.bool()].any()
    ids = torch.randint(0, 512, (1, 8))
    assert model(input_ids=ids).logits.shape == (1, 8, 512)


def test_energy_meter_reads_rapl_counters_and_their_wraparound(tmp_path):
    from pretrain.sparsity.accounting import EnergyMeter

    zone = tmp_path / "intel-rapl:0"  # the sysfs layout of /sys/class/powercap
    zone.mkdir()
    (zone / "max_energy_range_uj").write_text("1000000\n")
    (zone / "energy_uj").write_text("900000\n")
    meter = EnergyMeter(str(tmp_path / "intel-rapl*"))
    assert meter.available
    meter.start()
    (zone / "energy_uj").write_text("400000\n")  # wrapped: 100000 to the top, then 400000
    assert meter.stop() == pytest.approx(0.5)
    assert not EnergyMeter(str(tmp_path / "nothing-here*")).available
