"""`mintline serve`: a verification service and page for people who do not hold the keys.

    mintline serve --keys DIR --pubkeys DIR [--tokenizer DIR] [--host 127.0.0.1] [--port 8000] [--detail coarse|full]

Serves `/` (paste a text, drop a text file or a bundle tar), `POST /api/v1/detect`,
`POST /api/v1/verify`, `GET /api/v1/keys`, `GET /healthz`, and OpenAPI docs at `/docs`, on
uvicorn. Detection flags (`--fpr`, `--min_tokens`, `--window`) are those of `mintline
watermark detect`, so the same flags give the CLI's verdicts. Stop it with Ctrl-C (SIGINT) or
SIGTERM, as any uvicorn server.
"""

from __future__ import annotations

import argparse
import sys

from mintline.console import CommandResult
from mintline.serve.settings import DEFAULT_WINDOW, ServeArguments
from watermark.detect import DetectionConfig


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    from mintline.argparsing import MintlineParser

    dataclass_types = (ServeArguments, DetectionConfig)
    description = (
        "Serve watermark verdicts for texts and signature verdicts for release bundles, on a page at / and a JSON "
        "API (docs at /docs). Key secrets never leave the process; answers are coarse unless --detail full; "
        "per-client rate limits and a query budget are on by default."
    )
    if subparsers is None:
        parser = MintlineParser(dataclass_types, prog="mintline serve", description=description)
    else:
        parser = subparsers.add_parser(
            "serve", help="verification service and page", dataclass_types=dataclass_types, description=description
        )
    # the page highlights marked spans, which windowed detection finds
    parser.set_defaults(handler=main, window=DEFAULT_WINDOW)
    for action in parser._actions:
        if action.dest == "window":
            action.help = f"{action.help}; serve's default {DEFAULT_WINDOW}"
    return parser


def main(args: ServeArguments, detection: DetectionConfig, options: argparse.Namespace) -> CommandResult:
    import uvicorn

    from mintline.serve.app import create_app

    app = create_app(args, detection)  # keys, tokenizer and public keys are checked before listening
    proxies = [ip.strip() for ip in (args.forwarded_allow_ips or "").split(",") if ip.strip()]
    if not options.quiet:
        shown = "127.0.0.1" if args.host in ("127.0.0.1", "localhost") else args.host
        sys.stderr.write(f"mintline serve: http://{shown}:{args.port}/ (API docs at /docs); Ctrl-C stops it\n")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        # X-Forwarded-For would let any client pick its own rate-limit identity: trusted only from named proxies
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
        timeout_keep_alive=5,
        log_level="warning" if options.quiet else "info",
    )
    return CommandResult(data={"stopped": True}, text="mintline serve: stopped")


if __name__ == "__main__":
    from mintline.cli import main as cli_main

    raise SystemExit(cli_main(["serve", *sys.argv[1:]]))
