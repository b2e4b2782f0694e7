"""Corpus preparation (readers, filters, dedup, tokenizer) and the pretraining engine."""
