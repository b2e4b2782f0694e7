"""The Hugging Face model card (`README.md`): YAML front matter + a body from the run record.

Front matter keys follow the Hub's model-card metadata: `license: mit`, `library_name`,
`pipeline_tag`, `tags`, `datasets`, `base_model` (adapters and fine-tunes), `metrics`, and a
`model-index` with the measured values. The body describes the data and its cleaning, the
pretraining, the labels used in alignment (real, simulated, pseudo), the watermark (scheme and
public key id, never the secret), intended use and limitations. Every number comes from the
run record; a stage that did not run says so instead of inventing figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from release.model_files import ModelFiles
from release.run_record import RunRecord, find_number, find_text, flatten

CARD_NAME = "README.md"
# Where the card's loading snippet says "this bundle": a user (or a test) puts the real path there.
BUNDLE_PLACEHOLDER = "path/to/this/bundle"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_FRONT_MATTER = re.compile(r"\A---\n(.*?\n)---\n", re.DOTALL)


@dataclass
class CardFacts:
    name: str
    version: str
    holder: str
    year: str
    key_fingerprint: str
    key_algorithm: str
    base_model: str | None = None  # a Hub id, for the front matter's `base_model`
    base_manifest_digest: str | None = None
    extra_tags: list[str] = field(default_factory=list)
    base_bundle_name: str | None = None  # an adapter built on a base bundle: its name and location
    base_location: str | None = None  # relative to this bundle ("../base"), as adapter_config.json says
    input_license: str | None = None  # what the released model directory declared
    relicensed_from: str | None = None  # set when the publisher allowed relicensing it under MIT


def card_license(text: str) -> str | None:
    """The `license` declared in a card's YAML front matter (lower-cased), or None."""
    match = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if not match:
        return None
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    value = meta.get("license") if isinstance(meta, dict) else None
    return str(value).strip().lower() if value is not None else None


def render_card(facts: CardFacts, model: ModelFiles, run: RunRecord) -> str:
    metrics = _metrics(run)
    meta = {
        "license": "mit",
        "library_name": "peft" if model.is_adapter else "transformers",
        "pipeline_tag": "text-generation",
        "tags": _tags(model, run, facts),
        "datasets": _datasets(run),
        "metrics": [m["type"] for m in metrics] or None,
        "base_model": facts.base_model,
        "model-index": [
            {
                "name": facts.name,
                "results": [
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"name": (_datasets(run) or ["unspecified"])[0], "type": "text"},
                        "metrics": metrics,
                    }
                ],
            }
        ]
        if metrics
        else None,
    }
    meta = {k: v for k, v in meta.items() if v not in (None, [], "")}
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    sections = [
        f"# {facts.name} {facts.version}",
        _summary(facts, model, run),
        _model_section(model, facts),
        _data_section(run),
        _pretraining_section(run),
        _alignment_section(run),
        _watermark_section(run),
        _metrics_section(metrics),
        _use_section(),
        _load_section(facts, model),
        _verify_section(facts),
        _licence_section(facts),
    ]
    return f"---\n{front}---\n\n" + "\n\n".join(s for s in sections if s) + "\n"


def _tags(model: ModelFiles, run: RunRecord, facts: CardFacts) -> list[str]:
    tags = ["mintline", "causal-lm", "safetensors"]
    model_type = model.config.get("model_type") or model.adapter_config.get("peft_type")
    if model_type:
        tags.append(str(model_type).lower())
    if model.is_adapter:
        tags += ["peft", "adapter"]
    if run.stage("align"):
        tags.append("dpo")
    if run.stage("watermark"):
        tags.append("watermarked")
    return list(dict.fromkeys(tags + facts.extra_tags))


def _datasets(run: RunRecord) -> list[str]:
    prepare = run.stage("prepare")
    if not prepare:
        return []
    found: list[str] = []
    for key, value in flatten(prepare.config).items():
        if re.search(r"(corpus|dataset|datasets|sources?|inputs?)$", key.split(".")[-1], re.IGNORECASE):
            values = value if isinstance(value, list) else [value]
            found += [_dataset_name(v) for v in values if isinstance(v, str) and v]
    return list(dict.fromkeys(found)) or ["mintline-builtin-corpus"]


def _dataset_name(value: str) -> str:
    # A local path says nothing to a reader of the card (and may leak a home directory).
    if "/" in value and not re.fullmatch(r"[\w.-]+/[\w.-]+", value):
        return value.rstrip("/").rsplit("/", 1)[-1]
    return "mintline-builtin-corpus" if value == "builtin" else value


def _metrics(run: RunRecord) -> list[dict]:
    # Validation figures of pretraining (the engine logs eval_loss and eval_perplexity); anchored
    # patterns so that "initial_eval_loss" (before training) is never taken for the final one.
    figures = run.figures("pretrain")
    metrics = []
    loss = find_number(figures, r"^(eval|val|validation)_loss$", r"^final_(eval_|val_)?loss$")
    ppl = find_number(figures, r"^(eval_|val_|validation_)?perplexity$", r"^(eval_|val_)?ppl$")
    if loss is not None:
        metrics.append(
            {"type": "loss", "name": "validation loss after pretraining (nats/token)", "value": round(float(loss), 4)}
        )
    if ppl is not None:
        metrics.append(
            {"type": "perplexity", "name": "validation perplexity after pretraining", "value": round(float(ppl), 3)}
        )
    return metrics


def label_counts(run: RunRecord) -> dict[str, float | int | None]:
    """Labels used in alignment: real (human), simulated, pseudo; None where the run does not say.

    Explicit figures win; otherwise the alignment loop's `labels_received` are attributed by the
    label backend in its config ('simulated' or a Label Studio server with people behind it).
    """
    figures = run.figures("annotate", "align")
    real = find_number(figures, r"^(real|human)_labels$", r"^labels_(real|human)$")
    simulated = find_number(figures, r"^simulated_labels$", r"^labels_simulated$")
    pseudo = find_number(figures, r"^pseudo_labels$", r"^labels_pseudo$")
    if real is None and simulated is None:
        received = find_number(figures, r"^labels_received$")
        align = run.stage("align")
        backend = (find_text(align.config, r"(^|\.)backend$") or "").lower() if align else ""
        if received is not None and "simulated" in backend:
            real, simulated = 0, received
        elif received is not None and backend in ("labelstudio", "label_studio", "human"):
            real, simulated = received, 0
    return {"real (human) labels": real, "simulated labels": simulated, "pseudo labels": pseudo}


def _summary(facts: CardFacts, model: ModelFiles, run: RunRecord) -> str:
    kind = "PEFT adapter" if model.is_adapter else "causal language model"
    arch = model.config.get("model_type", "")
    made = (
        "made with the mintline pipeline (pretraining, RLHF-lite alignment, watermarking)"
        if run.stages
        else "released with mintline"
    )
    base = f" It adapts the base model **{facts.base_model}**." if facts.base_model else ""
    if facts.base_location:
        base = (
            f" It adapts the base model bundle **{facts.base_bundle_name}** (manifest digest "
            f"`{facts.base_manifest_digest}`), published beside it at `{facts.base_location}`."
        )
    return f"A small {arch + ' ' if arch else ''}{kind} with {model.parameters:,} parameters, {made}.{base}"


def _model_section(model: ModelFiles, facts: CardFacts) -> str:
    rows = {"parameters (stored)": f"{model.parameters:,}", "weights dtype": ", ".join(model.dtypes) or "?"}
    config = model.config
    for label, key in (
        ("architecture", "model_type"),
        ("hidden size", "hidden_size"),
        ("layers", "num_hidden_layers"),
        ("attention heads", "num_attention_heads"),
        ("key/value heads", "num_key_value_heads"),
        ("vocabulary", "vocab_size"),
        ("context length", "max_position_embeddings"),
    ):
        if key in config:
            rows[label] = config[key]
    adapter = model.adapter_config
    for label, key in (
        ("adapter type", "peft_type"),
        ("LoRA rank", "r"),
        ("LoRA alpha", "lora_alpha"),
        ("target modules", "target_modules"),
    ):
        if adapter.get(key) not in (None, ""):
            value = adapter[key]
            rows[label] = ", ".join(sorted(value)) if isinstance(value, list) else value
    if facts.base_manifest_digest:
        rows["base bundle manifest digest"] = f"`{facts.base_manifest_digest}`"
    if facts.base_location:
        rows["base bundle location (relative to this bundle)"] = f"`{facts.base_location}`"
    return "## Model\n\n" + _table(rows)


def _data_section(run: RunRecord) -> str:
    stage = run.stage("prepare")
    if not stage:
        return "## Training data\n\nNo data-preparation record was supplied with this release."
    text = (
        "## Training data\n\nDatasets: "
        + ", ".join(_datasets(run))
        + ".\n\nCleaning and deduplication figures from the run:\n\n"
    )
    return text + _table(_scalars(stage.figures) or {"(no figures recorded)": ""})


def _pretraining_section(run: RunRecord) -> str:
    stage = run.stage("pretrain")
    if not stage:
        return "## Pretraining\n\nNo pretraining record was supplied with this release."
    settings = {
        k: v
        for k, v in _scalars(stage.config).items()
        if re.search(r"model|preset|steps|lr|learning_rate|batch|seq|block|epochs|bf16|precision|sparsity", k)
    }
    return "## Pretraining\n\n" + _table({**settings, **_scalars(stage.figures)} or {"(no figures recorded)": ""})


def _alignment_section(run: RunRecord) -> str:
    stage = run.stage("align")
    annotate = run.stage("annotate")
    if not stage and not annotate:
        return "## Alignment\n\nThis model was not aligned with preference labels."
    figures = run.figures("annotate", "align")
    labels = label_counts(run)
    lines = ["## Alignment", "", "RLHF-lite: preference pairs chosen by active learning, then DPO. Labels used:", ""]
    lines.append(_table({k: ("not recorded" if v is None else v) for k, v in labels.items()}))
    lines.append(
        "\nSimulated labels come from a scripted annotator, not a person; pseudo labels are the reward model's own confident predictions."
    )
    other = {k: v for k, v in _scalars(figures).items() if not re.search(r"real|human|simulated|pseudo|_dir$|path", k)}
    if other:
        lines += ["", _table(other)]
    return "\n".join(lines)


def _watermark_section(run: RunRecord) -> str:
    stage = run.stage("watermark")
    if not stage:
        return "## Watermark\n\nNo watermark record was supplied: text generated by this model is not known to carry a mark."
    both = {**stage.config, **stage.figures}
    scheme = find_text(both, r"scheme$") or "unspecified"
    key_id = find_text(both, r"public_key_id$", r"key_id$", r"fingerprint$")
    lines = ["## Watermark", "", f"Generated text is watermarked with the **{scheme}** scheme."]
    lines.append(
        f"Public key id (fingerprint, safe to publish): `{key_id}`."
        if key_id
        else "The watermark key id was not recorded."
    )
    lines.append(
        "The secret key is not part of this release; detection needs the key holder (`mintline watermark detect`)."
    )
    numbers = _scalars({k: v for k, v in stage.figures.items() if not re.search(r"key|scheme", k)})
    if numbers:
        lines += ["", _table(numbers)]
    return "\n".join(lines)


def _metrics_section(metrics: list[dict]) -> str:
    if not metrics:
        return ""
    return "## Evaluation\n\n" + _table({m["name"]: m["value"] for m in metrics})


def _use_section() -> str:
    return (
        "## Intended use\n\nResearch and teaching: a small, fully reproducible model for studying frugal pretraining, "
        "label-efficient alignment, watermarking and signed releases.\n\n"
        "## Limitations\n\n"
        "- A small model trained on a small corpus: its text is often wrong or incoherent; do not rely on it for facts, code or advice.\n"
        "- It inherits the biases and gaps of its training data; it was not evaluated for safety.\n"
        "- Alignment used few labels, some of them simulated or pseudo labels (see above), not broad human feedback.\n"
        "- A text watermark is statistical evidence, not proof; paraphrasing or heavy editing can remove it."
    )


def _load_section(facts: CardFacts, model: ModelFiles) -> str:
    """A snippet that loads this bundle with transformers (and PEFT) wherever the release was copied."""
    bundle = f'bundle = Path("{BUNDLE_PLACEHOLDER}")  # the directory holding this README.md'
    has_tokenizer = any(name in TOKENIZER_FILES for name, _, _ in model.files)
    if not model.is_adapter:
        code = [
            "from pathlib import Path",
            "",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            bundle,
            "tokenizer = AutoTokenizer.from_pretrained(bundle)",
            "model = AutoModelForCausalLM.from_pretrained(bundle)",
        ]
        intro = "With transformers:"
    else:
        if facts.base_location:
            base_line = (
                "base_dir = bundle / PeftConfig.from_pretrained(bundle).base_model_name_or_path"
                f'  # "{facts.base_location}": the base bundle'
            )
            intro = (
                f"The base model is the bundle at `{facts.base_location}` relative to this one "
                "(adapter_config.json names it so): keep the release's directories together. "
                "With transformers and PEFT:"
            )
        else:
            base = facts.base_model or "path/to/the/base/model"
            base_line = f'base_dir = "{base}"  # the model this adapter was trained on'
            intro = "With transformers and PEFT, on the base model this adapter was trained on:"
        code = [
            "from pathlib import Path",
            "",
            "from peft import PeftConfig, PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            bundle,
            base_line,
            f"tokenizer = AutoTokenizer.from_pretrained({'bundle' if has_tokenizer else 'base_dir'})",
            "model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), bundle)",
        ]
    command = f'mintline generate --model {BUNDLE_PLACEHOLDER} --prompt "def add("'
    return f"## Loading\n\n{intro}\n\n```python\n" + "\n".join(code) + f"\n```\n\nOr with mintline: `{command}`."


def _licence_section(facts: CardFacts) -> str:
    text = f"## Licence\n\nMIT. Copyright (c) {facts.year} {facts.holder}. See `LICENSE`."
    if facts.relicensed_from:
        text += (
            f"\n\nThe model directory this bundle was made from declared the **{facts.relicensed_from}** "
            "licence; the publisher released it under MIT, stating that they hold the rights to do so "
            "(`--allow_relicense`, recorded in `provenance.json`)."
        )
    return text


def _verify_section(facts: CardFacts) -> str:
    stock = (
        "\n\nThe signature follows the OpenSSF model-signing v1.0 format, so the stock tool also verifies it:\n"
        "`model_signing verify key --public_key PUBLISHER.pub --signature model.sig BUNDLE_DIR`."
        if facts.key_algorithm.startswith("ecdsa")
        else ""
    )
    base = f" --base BUNDLE_DIR/{facts.base_location}" if facts.base_location else ""
    return (
        "## Verifying this release\n\n"
        f"Every file is listed with its SHA-256 in `model.sig`, signed with a key ({facts.key_algorithm}) whose fingerprint "
        f"(SHA-256 of the DER SubjectPublicKeyInfo) is `{facts.key_fingerprint}`. `provenance.json` records how the model was made.\n\n"
        f"`mintline release verify BUNDLE_DIR --pubkey PUBLISHER.pub{base}`{stock}"
    )


def _scalars(mapping: dict) -> dict:
    return {k: v for k, v in flatten(mapping).items() if isinstance(v, (int, float, str, bool)) and len(str(v)) < 120}


def _table(rows: dict) -> str:
    lines = ["| | |", "|---|---|"]
    for key, value in rows.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {str(key).replace('|', '/')} | {text.replace('|', '/')} |")
    return "\n".join(lines)
