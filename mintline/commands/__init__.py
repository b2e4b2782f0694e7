"""One module per `mintline` sub-command (TRL style: `make_parser(subparsers=None)` + `main`).

The table is kept here, not discovered, so `mintline --help` can list the commands without
importing torch or any stage package.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("mintline.commands.prepare", "clean raw text into shards and train a tokenizer"),
    "pretrain": ("mintline.commands.pretrain", "pretrain a causal LM on prepared shards"),
    "generate": ("mintline.commands.generate", "generate text from a model (optionally watermarked)"),
    "prune": ("mintline.commands.prune", "post-training pruning (magnitude, Wanda)"),
    "annotate": ("mintline.commands.annotate", "preference labelling with Label Studio and the label ledger"),
    "align": ("mintline.commands.align", "RLHF-lite: active preference labelling and DPO with TRL"),
    "watermark": ("mintline.commands.watermark", "watermark keys, detection, evaluation, distillation"),
    "release": ("mintline.commands.release", "build, sign and verify MIT release bundles"),
    "run": ("mintline.commands.run", "run the whole line end to end in one run directory"),
    "serve": ("mintline.commands.serve", "verification service and page for texts and release bundles"),
}
