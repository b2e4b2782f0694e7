"""Benchmark: `mintline serve` under load on loopback, against detection in-process.

    python benchmarks/serve.py            # 1,000 detect requests from 16 concurrent clients
    python benchmarks/serve.py --quick    # 200 requests, same clients

Set-up (temporary directory, removed at the end): a byte-level BPE tokenizer (vocab 4096)
trained on the built-in corpus, a watermark key and a release key pair, and 200-token texts
cut from human passages of the built-in corpus (detection costs the same whatever the verdict).
`mintline serve` runs in a subprocess on 127.0.0.1 with its default settings except the rate
limit and query budget, which are off: every client here shares one address, and the limits
would answer 429 by design.

Measured in one run: the server's RSS before and after; throughput, p50/p99 latency and errors
(any answer but 200, or a failed request) of N detect requests sent by 16 client threads, each
with its own keep-alive connection; and, as the baseline, the same texts detected one by one
in this process with the same `Detector` (no HTTP). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if not __package__:  # `python benchmarks/serve.py`: this folder would shadow the packages; use the repo root
    sys.path[0] = str(_HERE.parent)


def make_materials(root: Path, count: int, tokens: int) -> tuple[dict, list[str]]:
    from mintline.commands.watermark import human_passages
    from pretrain.corpus.builtin import iter_builtin_corpus
    from pretrain.tokenizer import TokenizerConfig, save_tokenizer, train_tokenizer
    from release.keys import generate_keypair
    from watermark.detect import TextTokenizer
    from watermark.keys import generate_key

    documents = [d.text for d in iter_builtin_corpus()]
    tokenizer_dir = save_tokenizer(
        train_tokenizer(iter(documents), TokenizerConfig(vocab_size=4096)), root / "tokenizer"
    )
    (root / "keys").mkdir()
    generate_key(tokenizer_dir, root / "keys" / "key.json")
    (root / "pubkeys").mkdir()
    generate_keypair(root / "pubkeys" / "publisher", "ed25519")
    tokenizer = TextTokenizer(tokenizer_dir).tokenizer
    texts = []
    for passage in human_passages(documents, words=260):
        ids = tokenizer.encode(passage, add_special_tokens=False).ids
        if len(ids) >= tokens:
            texts.append(tokenizer.decode(ids[:tokens]))
        if len(texts) == count:
            break
    materials = {"keys": root / "keys", "pubkeys": root / "pubkeys", "tokenizer": tokenizer_dir}
    return materials, texts


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_server(materials: dict, port: int, log_path: Path) -> subprocess.Popen:
    import httpx

    command = [
        sys.executable,
        "-m",
        "mintline",
        "serve",
        "-q",
        "--keys",
        str(materials["keys"]),
        "--pubkeys",
        str(materials["pubkeys"]),
        "--tokenizer",
        str(materials["tokenizer"]),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--rate_limit",
        "0",
        "--query_budget",
        "0",
    ]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=_HERE.parent)
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mintline serve exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise SystemExit("mintline serve did not come up within 180 s")


def load(url: str, texts: list[str], requests: int, clients: int) -> dict:
    """Send `requests` detect requests from `clients` threads; latencies in ms, errors, wall seconds."""
    import httpx

    jobs: queue.Queue = queue.Queue()
    for index in range(requests):
        jobs.put(texts[index % len(texts)].encode("utf-8"))
    latencies: list[float] = []
    errors: list[str] = []
    verdicts: dict[str, int] = {}
    lock = threading.Lock()

    def client():
        with httpx.Client(base_url=url, timeout=60) as session:
            while True:
                try:
                    body = jobs.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                try:
                    response = session.post("/api/v1/detect", content=body, headers={"Content-Type": "text/plain"})
                    ok = response.status_code == 200
                    verdict = response.json().get("verdict") if ok else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, verdict = False, type(exc).__name__
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(verdict)
                    else:
                        verdicts[verdict] = verdicts.get(verdict, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "wall_s": wall,
        "throughput_rps": requests / wall,
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))],
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "verdicts": verdicts,
    }


def in_process_rps(materials: dict, texts: list[str], requests: int) -> float:
    from mintline.serve.settings import DEFAULT_WINDOW
    from watermark.detect import DetectionConfig, Detector
    from watermark.keys import load_keys

    keys, _ = load_keys([materials["keys"] / "key.json"], materials["tokenizer"])
    detector = Detector(keys, materials["tokenizer"], DetectionConfig(window=DEFAULT_WINDOW))
    started = time.perf_counter()
    for index in range(requests):
        detector.detect_texts([texts[index % len(texts)]])
    return requests / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 requests instead of 1,000")
    parser.add_argument("--requests", type=int, default=None, help="detect requests (default 1000; 200 with --quick)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per text")
    parser.add_argument("--texts", type=int, default=100, help="distinct texts, sent round-robin")
    args = parser.parse_args()
    requests = args.requests or (200 if args.quick else 1000)

    import socket

    with tempfile.TemporaryDirectory(prefix="mintline-serve-bench-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        materials, texts = make_materials(root, args.texts, args.tokens)
        print(
            f"set-up: {len(texts)} texts of {args.tokens} tokens in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = start_server(materials, port, root / "serve.log")
        try:
            url = f"http://127.0.0.1:{port}"
            rss_before = rss_mb(server.pid)
            load(url, texts, args.clients, args.clients)  # one warm-up request per client
            result = load(url, texts, requests, args.clients)
            rss_after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
        baseline = in_process_rps(materials, texts, min(requests, 200))
    summary = {
        "benchmark": "serve",
        "requests": requests,
        "clients": args.clients,
        "tokens_per_text": args.tokens,
        "throughput_rps": round(result["throughput_rps"], 1),
        "p50_ms": round(result["p50_ms"], 1),
        "p99_ms": round(result["p99_ms"], 1),
        "errors": result["errors"],
        "error_kinds": result["error_kinds"],
        "verdicts": result["verdicts"],
        "server_rss_mb_before": round(rss_before, 1),
        "server_rss_mb_after": round(rss_after, 1),
        "in_process_rps": round(baseline, 1),
        "served_vs_in_process": round(result["throughput_rps"] / baseline, 3),
        "cores": os.cpu_count(),
        "wall_s": round(result["wall_s"], 2),
    }
    print(
        f"{requests} requests, {args.clients} clients: {summary['throughput_rps']} req/s, p50 {summary['p50_ms']} ms, "
        f"p99 {summary['p99_ms']} ms, {summary['errors']} errors; server RSS {summary['server_rss_mb_before']} -> "
        f"{summary['server_rss_mb_after']} MB; in-process detection {summary['in_process_rps']} texts/s",
        file=sys.stderr,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
