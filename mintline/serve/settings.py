"""The service's settings: where the published material is, where to listen, and the limits.

Detection's own settings (false-positive rate, minimum tokens, window) are `DetectionConfig`,
the same dataclass `mintline watermark detect` takes, so the service and the CLI give the same
verdict for the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The page's marked spans come from windowed detection; 48 scored tokens is the window the
# watermark tests find spans of one 200-token sample with inside human text.
DEFAULT_WINDOW = 48


@dataclass
class ServeArguments:
    keys: str = field(
        default=None,
        metadata={"help": "directory of watermark key files (or one key file); only their public key ids are shown"},
    )
    pubkeys: str = field(
        default=None,
        metadata={
            "help": "directory of release public keys (*.pub) (or one .pub file); private keys there are ignored"
        },
    )
    tokenizer: str = field(
        default=None,
        metadata={"help": "tokenizer directory of the keys (default: KEYS/tokenizer.json or KEYS/tokenizer/)"},
    )
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port to listen on"})
    detail: Literal["coarse", "full"] = field(
        default="coarse",
        metadata={"help": "coarse: verdicts and p-value ranges only; full: exact p-values, z-scores and span figures"},
    )
    rate_limit: float = field(
        default=30.0, metadata={"help": "API requests per minute per client (0 = no rate limit)"}
    )
    burst: int = field(default=10, metadata={"help": "API requests a client may make at once before the rate applies"})
    query_budget: int = field(
        default=1000,
        metadata={"help": "detect + verify queries per client per budget period (0 = no budget)"},
    )
    budget_hours: float = field(default=24.0, metadata={"help": "length of the query budget's period in hours"})
    max_text_bytes: int = field(default=1 << 20, metadata={"help": "largest detect request body (bytes); larger: 413"})
    max_bundle_bytes: int = field(
        default=2 << 30, metadata={"help": "largest verify request body (bytes); larger: 413"}
    )
    upload_timeout: float = field(
        default=120.0, metadata={"help": "seconds a client has to send a whole request body; slower: 408"}
    )
    threads: int = field(
        default=0, metadata={"help": "worker threads for detection and verification (0 = one per core, at least 2)"}
    )
    forwarded_allow_ips: str = field(
        default=None,
        metadata={"help": "trust X-Forwarded-For from these proxy addresses (comma-separated); default: trust none"},
    )

    def __post_init__(self):
        if not self.keys:
            raise ValueError("keys: required (the directory holding the watermark key files)")
        if not self.pubkeys:
            raise ValueError("pubkeys: required (the directory holding the release public keys, *.pub)")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: must be in 0..65535, got {self.port}")
        for name in ("rate_limit", "query_budget", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("burst", "max_text_bytes", "max_bundle_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("budget_hours", "upload_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
