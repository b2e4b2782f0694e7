"""A LoRA release built as the pipeline builds it loads wherever it is copied, by the card's own snippet.

The release stage publishes `release/base` (the pretrained model) and `release/bundle` (the adapter);
the adapter's `adapter_config.json` names its base relatively (`../base`), the card and provenance
name the base by its manifest digest, and the card's Python snippet is executed here, from another
working directory, on a copy of the release.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="module")
def pipeline_release(tmp_path_factory, nano_model_dir):
    """A run directory with pretrain/model and an align/model LoRA adapter (as the align stage saves it:
    base path relative to the working directory, tokenizer beside it), released by the release stage."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mintline.pipeline.release_stage import run_release
    from mintline.pipeline.stages import ReleaseStageConfig

    run_dir = tmp_path_factory.mktemp("runs") / "demo"
    shutil.copytree(nano_model_dir, run_dir / "pretrain" / "model")
    torch.manual_seed(1)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False
    )  # random B: the adapter changes the output
    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(run_dir / "pretrain" / "model"), lora)
    policy.save_pretrained(run_dir / "align" / "model")
    AutoTokenizer.from_pretrained(nano_model_dir).save_pretrained(run_dir / "align" / "model")
    config_path = run_dir / "align" / "model" / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text())
    adapter_config["base_model_name_or_path"] = "runs/demo/pretrain/model"  # what the align stage records
    config_path.write_text(json.dumps(adapter_config))

    outcome = run_release(ReleaseStageConfig(name="demo", algorithm="ed25519"), None, run_dir)
    assert outcome.figures["verified"] and outcome.figures["adapter"]
    return run_dir


def reference_logits(run_dir: Path, ids):
    """The aligned policy as PEFT loads it from the run itself."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(run_dir / "pretrain" / "model")
    model = PeftModel.from_pretrained(base, run_dir / "align" / "model").eval()
    with torch.inference_mode():
        return model(ids).logits


def card_snippet(bundle: Path) -> str:
    card = (bundle / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", card, re.DOTALL)
    assert len(blocks) == 1, "the card has one Python loading snippet"
    return blocks[0]


def test_copied_release_loads_with_the_cards_snippet(pipeline_release, tmp_path, monkeypatch):
    import torch

    from release.card import BUNDLE_PLACEHOLDER

    copied = tmp_path / "downloads" / "demo-release"
    for part in ("base", "bundle"):  # what is published: the two bundles, side by side
        shutil.copytree(pipeline_release / "release" / part, copied / part)
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)

    adapter_config = json.loads((copied / "bundle" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "../base"

    snippet = card_snippet(copied / "bundle")
    assert BUNDLE_PLACEHOLDER in snippet and "PeftModel.from_pretrained" in snippet
    namespace: dict = {}
    exec(compile(snippet.replace(BUNDLE_PLACEHOLDER, str(copied / "bundle")), "model-card-snippet", "exec"), namespace)
    model, tokenizer = namespace["model"], namespace["tokenizer"]

    ids = tokenizer("def add(a, b):", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = model.eval()(ids).logits
    torch.testing.assert_close(logits, reference_logits(pipeline_release, ids))
    plain = namespace["AutoModelForCausalLM"].from_pretrained(copied / "base").eval()
    with torch.inference_mode():
        assert not torch.allclose(plain(ids).logits, logits)  # the adapter was applied, not just the base


def test_copied_release_verifies_and_names_its_base_by_digest(pipeline_release, tmp_path, cli):
    from release.verifying import verify_bundle

    copied = tmp_path / "copy"
    shutil.copytree(pipeline_release / "release", copied, ignore=shutil.ignore_patterns("keys"))
    pub = pipeline_release / "release" / "keys" / "publisher.pub"
    base_digest = verify_bundle(copied / "base", pub).figures["manifest_digest"]
    chained = verify_bundle(copied / "bundle", pub, base=copied / "base")
    assert chained.ok, chained.reasons
    assert chained.figures["base_manifest_digest"] == base_digest

    card = (copied / "bundle" / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert "base_model" not in front  # a local bundle is not a Hub id: the body names it instead
    assert base_digest in card and "`../base`" in card

    provenance = json.loads((copied / "bundle" / "provenance.json").read_text())
    dependencies = {d["name"]: d for d in provenance["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert "sha256:" + dependencies["base_bundle"]["digest"]["sha256"] == base_digest
    assert dependencies["base_bundle"]["annotations"]["license"] == "mit"
    release_parameters = provenance["predicate"]["buildDefinition"]["externalParameters"]["release"]
    assert release_parameters["base_bundle_location"] == "../base"

    generated = cli(
        "generate", "--model", copied / "bundle", "--prompt", "def add(", "--max_new_tokens", "4", "--json"
    )
    assert generated.code == 0, generated
    assert Path(generated.json()["base_model"]).resolve() == (copied / "base").resolve()


def test_full_model_bundle_snippet_loads_from_anywhere(pristine_bundles, tmp_path, monkeypatch):
    from release.card import BUNDLE_PLACEHOLDER

    copied = tmp_path / "model"
    shutil.copytree(pristine_bundles["ed25519"], copied)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(card_snippet(copied).replace(BUNDLE_PLACEHOLDER, str(copied)), namespace)
    assert namespace["model"].config.model_type == "llama" and len(namespace["tokenizer"]) > 0
