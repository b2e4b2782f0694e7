"""The release stage of a run: signing key, bundle(s) of the aligned model, verification.

A LoRA-aligned model is published as two bundles, the way adapters are meant to be shared:
`release/base` (the pretrained model) and `release/bundle` (the adapter, which records the
base bundle's manifest digest, so `verify --base` checks the chain). A fully fine-tuned model
is one bundle. The signing key lives in `release/keys/` (private key mode 0600) and is reused
on re-runs, so the fingerprint of a run's releases does not change.
"""

from __future__ import annotations

from pathlib import Path

from mintline import layout
from mintline.errors import MintlineError
from mintline.journal import Journal
from mintline.pipeline.stages import ReleaseStageConfig, StageOutcome


class ReleaseNotVerified(MintlineError):
    """The bundle the run just built does not verify: fail closed."""

    exit_code = 1


def run_release(config: ReleaseStageConfig, options, run_dir: Path) -> StageOutcome:
    from release.bundle import build_bundle
    from release.keys import fingerprint as key_fingerprint
    from release.keys import generate_keypair, key_paths, load_public_key
    from release.verifying import verify_bundle

    base_model = layout.pretrained_model(run_dir)
    aligned = layout.aligned_model(run_dir)
    out = layout.stage_dir(run_dir, layout.RELEASE)
    is_adapter = (aligned / "adapter_config.json").is_file()
    inputs = {"aligned_model": aligned}
    if is_adapter:
        inputs["base_model"] = base_model
    journal = Journal(run_dir)
    with journal.stage(
        "release", config=config, inputs=inputs, outputs=[out / "bundle", *([out / "base"] if is_adapter else [])]
    ) as stage:
        if stage.skipped:
            return StageOutcome("release", stage.figures, skipped=True)
        prefix = out / "keys" / "publisher"
        private_key, public_key = key_paths(prefix)
        if private_key.is_file():
            fingerprint = key_fingerprint(load_public_key(public_key))
        else:
            private_key.parent.mkdir(parents=True, exist_ok=True)
            fingerprint = generate_keypair(prefix, config.algorithm)
        common = dict(
            name=config.name,
            version=config.version,
            holder=config.holder,
            run_json=run_dir / "run.json",
            overwrite=True,
            tar=config.tar,
        )
        figures: dict = {"fingerprint": fingerprint, "algorithm": config.algorithm, "adapter": is_adapter}
        base_bundle = None
        if is_adapter:
            base_bundle = out / "base"
            base = build_bundle(base_model, base_bundle, private_key, **{**common, "name": f"{config.name}-base"})
            figures["base_bundle"] = {"path": str(base_bundle), **_brief(base)}
        bundle = build_bundle(aligned, out / "bundle", private_key, base_bundle=base_bundle, **common)
        figures["bundle"] = {"path": str(out / "bundle"), **_brief(bundle)}
        result = verify_bundle(out / "bundle", public_key, base=base_bundle)
        figures["verified"] = result.ok
        figures["verification"] = {"reasons": list(result.reasons), **(result.figures or {})}
        stage.figures.update(figures)
        if not result.ok:
            raise ReleaseNotVerified(f"the bundle just built does not verify: {'; '.join(result.reasons)}")
    text = (
        f"release: {'adapter + base bundles' if is_adapter else 'bundle'} in {out}, signed by {fingerprint[:16]}…, "
        f"verified {'OK' if result.ok else 'FAILED'}"
    )
    return StageOutcome("release", stage.figures, text=text)


def _brief(figures: dict) -> dict:
    keep = ("files", "bytes", "parameters", "manifest_digest", "base_manifest_digest", "seconds", "tar")
    return {k: v for k, v in figures.items() if k in keep}
