"""Signed MIT release bundles: assembly, model card, provenance, manifest, signing, verification."""
