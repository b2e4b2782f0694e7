"""Benchmark: mintline sign+verify vs the stock OpenSSF `model_signing` and vs one raw SHA-256 pass.

    python benchmarks/release.py            # >= 2 GB of generated weight files
    python benchmarks/release.py --quick    # ~300 MB, well under 5 minutes

One directory of safetensors files of mixed sizes (random bytes behind a valid header) is
generated once into a temporary directory and removed at the end. Then, in one run, for each
repetition and in a rotating order (so drift and neighbours' load hit every contender alike):

* raw       : read every byte once and SHA-256 it, one thread, 1 MiB reads (the floor a
              single-threaded tool could reach for ONE pass);
* mintline  : `release.signing.sign_directory` (P-256 key) then `release.verifying.verify_directory`;
* stock     : `model_signing` 1.1.1's own API, `use_elliptic_key_signer(...).sign` then
              `use_elliptic_key_verifier(...).verify`, file serialization, same files
              (in-process, like mintline, so interpreter start-up is not counted for either).

Page cache: WARM for every contender. The files are read once before timing (they fit in RAM);
dropping caches would need root and would disturb everyone else on the machine. Medians over
the repetitions are compared; the last line is JSON with the issue's target names.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # `python benchmarks/release.py`: this folder would shadow the packages; use the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

# Shares of the total size: one large shard, several medium ones, a tail of small ones,
# as in a sharded checkpoint with an embedding file and adapters.
SHARES = (0.24, 0.16, 0.12, 0.10, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.015, 0.01, 0.005)
BLOCK = 16 << 20


def generate_weights(directory: Path, total_bytes: int) -> tuple[int, int]:
    """Safetensors files (one U8 tensor each) of mixed sizes plus small JSON files; (files, bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    count = written = 0
    for index, share in enumerate(SHARES):
        payload = max(1, int(total_bytes * share))
        header = json.dumps({"weight": {"dtype": "U8", "shape": [payload], "data_offsets": [0, payload]}}).encode()
        header += b" " * (-len(header) % 8)
        path = directory / f"model-{index + 1:05d}-of-{len(SHARES):05d}.safetensors"
        with open(path, "wb") as handle:
            handle.write(struct.pack("<Q", len(header)) + header)
            left = payload
            while left:
                chunk = os.urandom(min(BLOCK, left))
                handle.write(chunk)
                left -= len(chunk)
        count += 1
        written += path.stat().st_size
    for name, text in (("config.json", '{"model_type": "llama"}'), ("tokenizer.json", '{"version": "1.0"}')):
        (directory / name).write_text(text)
        count += 1
        written += len(text)
    return count, written


def files_of(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "model.sig")


def warm_page_cache(directory: Path) -> None:
    for path in files_of(directory):
        with open(path, "rb") as handle:
            while handle.read(BLOCK):
                pass


def raw_sha256(directory: Path) -> float:
    started = time.perf_counter()
    for path in files_of(directory):
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        hasher.hexdigest()
    return time.perf_counter() - started


def mintline_sign_verify(directory: Path, key_prefix: Path, workers: int | None) -> float:
    from release.signing import sign_directory
    from release.verifying import verify_directory

    started = time.perf_counter()
    sign_directory(directory, f"{key_prefix}.key", workers=workers, progress=None)
    result = verify_directory(directory, f"{key_prefix}.pub", workers=workers, progress=None)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"mintline verification failed: {result.reasons}")
    return elapsed


def stock_sign_verify(directory: Path, key_prefix: Path, signature: Path) -> float:
    from model_signing import hashing, signing, verifying

    hashing_config = hashing.Config().set_ignored_paths(paths=["model.sig"])  # mintline's own signature
    started = time.perf_counter()
    signing.Config().use_elliptic_key_signer(private_key=f"{key_prefix}.key").set_hashing_config(hashing_config).sign(
        directory, signature
    )
    verifying.Config().use_elliptic_key_verifier(public_key=f"{key_prefix}.pub").set_hashing_config(
        hashing_config
    ).verify(directory, signature)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~300 MB instead of 2 GB")
    parser.add_argument(
        "--size_gb",
        type=float,
        default=None,
        help="total size of the generated weights (default 2.0; 0.3 with --quick)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions per contender")
    parser.add_argument("--workers", type=int, default=None, help="mintline hashing threads (default: one per core)")
    parser.add_argument("--tmp", default=None, help="where to generate the files (default: the system temp dir)")
    args = parser.parse_args(argv)
    size_gb = args.size_gb if args.size_gb is not None else (0.3 if args.quick else 2.0)

    from release.hashing import default_workers
    from release.keys import generate_keypair

    work = Path(tempfile.mkdtemp(prefix="mintline-release-bench-", dir=args.tmp))
    try:
        model = work / "weights"
        started = time.perf_counter()
        files, total = generate_weights(model, int(size_gb * 1e9))
        print(
            f"generated {files} files, {total / 1e9:.2f} GB in {time.perf_counter() - started:.1f} s under {work}",
            file=sys.stderr,
        )
        key = work / "publisher"
        generate_keypair(key, "ecdsa-p256")
        warm_page_cache(model)

        contenders = {
            "raw_sha256_one_pass": lambda: raw_sha256(model),
            "mintline_sign_verify": lambda: mintline_sign_verify(model, key, args.workers),
            "model_signing_sign_verify": lambda: stock_sign_verify(model, key, work / "stock.sig"),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        load_before = os.getloadavg()[0]
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]  # rotate who goes first
            for name in order:
                cpu_started = time.process_time()  # CPU seconds of all our threads: the work, whatever the load
                times[name].append(contenders[name]())
                cpu[name].append(time.process_time() - cpu_started)
                print(
                    f"  repeat {repeat + 1}: {name:<26} {times[name][-1]:7.3f} s wall {cpu[name][-1]:7.3f} s CPU",
                    file=sys.stderr,
                )
        load_after = os.getloadavg()[0]

        median = {name: statistics.median(values) for name, values in times.items()}
        cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
        raw, ours, stock = (
            median["raw_sha256_one_pass"],
            median["mintline_sign_verify"],
            median["model_signing_sign_verify"],
        )
        gb = total / 1e9
        print(
            f"\n{gb:.2f} GB in {files} files; page cache warm for all; {default_workers()} cores; medians of {args.repeats}; "
            f"load average {load_before:.1f} -> {load_after:.1f} (other work on the same cores slows every contender)"
        )
        print(f"{'contender':<30}{'wall s':>9}{'CPU s':>9}{'GB/s wall (bytes x passes)':>29}")
        for label, name, passes in (
            ("raw SHA-256, 1 thread, 1 pass", "raw_sha256_one_pass", 1),
            ("mintline sign + verify", "mintline_sign_verify", 2),
            ("model_signing sign + verify", "model_signing_sign_verify", 2),
        ):
            print(f"{label:<30}{median[name]:>9.3f}{cpu_median[name]:>9.3f}{passes * gb / median[name]:>29.2f}")
        result = {
            "mintline_sign_verify_s": round(ours, 3),
            "model_signing_sign_verify_s": round(stock, 3),
            "raw_sha256_one_pass_s": round(raw, 3),
            "speedup_vs_model_signing": round(stock / ours, 3),
            "ratio_vs_raw_sha256": round(ours / raw, 3),
            "bytes": total,
            "files": files,
            "mintline_cpu_s": round(cpu_median["mintline_sign_verify"], 3),
            "model_signing_cpu_s": round(cpu_median["model_signing_sign_verify"], 3),
            "raw_sha256_cpu_s": round(cpu_median["raw_sha256_one_pass"], 3),
            "load_average": round((load_before + load_after) / 2, 2),
            "page_cache": "warm",
            "cores": default_workers(),
            "repeats": args.repeats,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
