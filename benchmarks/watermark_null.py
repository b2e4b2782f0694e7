"""Issue 25 benchmark: is the weight mark's text test calibrated for one fixed key, or only over keys?

    python benchmarks/watermark_null.py --quick    # nano model, 4 keys, 300 passages: ~2 minutes on 2 cores
    python benchmarks/watermark_null.py            # 12 keys, 1,000 passages
    python benchmarks/watermark_null.py --model DIR

GaussMark's text statistic is exactly N(0, 1) for a text written without the marked model *over the draw of
the key*. A released model has one key, and the texts one person checks are related (one corpus), so what
matters is the rate at which one key flags a set of human passages. For each of K fresh keys this runs the
text test exactly as `mintline watermark detect` does (base samples' and human passages' mean gradients
projected out, `scorer_on_base`) on the same N human passages, and reports per key: the mean and standard
deviation of the statistic, the share flagged at 5% and 1%, and the exact binomial tail of each count. A
second, disjoint set of passages gives each key's offset again: if the offsets of one key on the two sets
agree (correlation near 1), a per-key standardisation on held-out human text would calibrate it; if not, the
offset belongs to the set of texts, not to the key. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # `python benchmarks/watermark_null.py`: use the repository root for the packages
    sys.path[0] = str(REPO)


def key_statistics(model, model_dir, tokenizer, key_path, scored_sets):
    """The shipped text test with a fresh key: its TextScores per set of passages."""
    from mintline.commands.watermark_weights import scorer_on_base
    from watermark.keys import generate_key, load_key
    from watermark.weights import EmbedConfig, embed_weight_mark

    generate_key(model_dir, key_path, overwrite=True)
    key = load_key(key_path)
    # The scale cancels in the statistic and the base is the unmarked model itself: any scale describes the mark.
    mark = embed_weight_mark(copy.deepcopy(model), key, EmbedConfig(relative_scale=0.1))
    scorer = scorer_on_base(copy.deepcopy(model), tokenizer, key, mark)
    return [scorer.score_texts(tokenizer, texts)[0] for texts in scored_sets]


def summarise(scores) -> dict:
    """One key on one set: the statistic's mean and spread, and what `detect` would flag at 5% and 1%."""
    import numpy as np

    from watermark.stats import binomial_sf

    z = np.array([score.statistic for score in scores])
    flagged = {rate: sum(score.p_value <= rate for score in scores) for rate in (0.05, 0.01)}
    return {
        "mean": round(float(z.mean()), 3),
        "std": round(float(z.std()), 3),
        "flagged_5pct": flagged[0.05],
        "flagged_1pct": flagged[0.01],
        "binomial_tail_5pct": binomial_sf(flagged[0.05], len(scores), 0.05),
        "binomial_tail_1pct": binomial_sf(flagged[0.01], len(scores), 0.01),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", type=Path, help="model directory (default: the cached reference nano model)")
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mintline"
    )
    parser.add_argument("--keys", type=int, default=None, help="fresh keys (default 4 / 12)")
    parser.add_argument("--passages", type=int, default=None, help="human passages scored per key (300 / 1,000)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import numpy as np
    import torch

    from mintline.pipeline.corpus import human_passages
    from pretrain.generation import load_model_and_tokenizer
    from pretrain.reference_model import save_reference_nano

    torch.set_num_threads(args.threads)
    started = time.time()
    keys = args.keys or (4 if args.quick else 12)
    count = args.passages or (300 if args.quick else 1000)
    model_dir = args.model or save_reference_nano(args.cache / "benchmark-watermark" / "nano-300", 300)
    model, tokenizer = load_model_and_tokenizer(model_dir)
    passages = human_passages()
    # detect's own calibration reads the corpus's last 32 passages and prompts after its first 7: both sets here
    # come from the middle, disjoint from those and from each other
    scored, second = passages[100 : 100 + count], passages[100 + count : 100 + count + count // 2]
    if len(second) < count // 2:
        raise SystemExit(f"the built-in corpus has {len(passages)} passages; --passages {count} needs more")
    per_key = []
    with tempfile.TemporaryDirectory(prefix="mintline-null-") as scratch:
        for index in range(keys):
            first, other = key_statistics(
                model, model_dir, tokenizer, Path(scratch) / f"key{index}.json", [scored, second]
            )
            row = {
                "key": index,
                **summarise(first),
                "mean_on_second_set": round(float(np.mean([score.statistic for score in other])), 3),
            }
            per_key.append(row)
            print(json.dumps(row), flush=True)
    means = np.array([row["mean"] for row in per_key])
    second_means = np.array([row["mean_on_second_set"] for row in per_key])
    all_statistics = len(scored) * keys
    result = {
        "model": str(model_dir),
        "keys": keys,
        "passages_per_key": len(scored),
        "per_key": per_key,
        "offset_range": [round(float(means.min()), 3), round(float(means.max()), 3)],
        "offset_correlation_between_sets": round(float(np.corrcoef(means, second_means)[0, 1]), 3)
        if keys > 2
        else None,
        "flag_rate_1pct_range": [
            min(r["flagged_1pct"] for r in per_key) / count,
            max(r["flagged_1pct"] for r in per_key) / count,
        ],
        "flag_rate_1pct_over_keys": sum(r["flagged_1pct"] for r in per_key) / all_statistics,
        "flag_rate_5pct_over_keys": sum(r["flagged_5pct"] for r in per_key) / all_statistics,
        "keys_failing_binomial_check_1e-3": sum(
            min(r["binomial_tail_5pct"], r["binomial_tail_1pct"]) <= 1e-3 for r in per_key
        ),
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
