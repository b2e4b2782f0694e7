"""Sparse training, dynamic structured pruning and post-training pruning for Llama-layout models.

Entry points: `config.SparsityArguments` + `callbacks.build_callbacks` (during pretraining),
`posttrain` (after it; `mintline prune`), `structured.restore_pruned_shapes` (resume).
Nothing heavy is imported here, so the CLI can read the configs without loading torch.
"""
