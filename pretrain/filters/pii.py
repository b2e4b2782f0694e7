"""PII scrubbing as FineWeb does it (datatrove's PIIFormatter): e-mail addresses and public
IP addresses are replaced by fixed stand-ins, so text keeps its shape but not the data.

The patterns and stand-ins are datatrove's (Apache-2.0). datatrove cycles the stand-ins
across the whole stream, which makes the output depend on how documents are spread over
workers; here the cycle restarts in every document, so output is the same however it runs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from pretrain.corpus.document import Document
from pretrain.filters.base import DocumentFilter

EMAIL = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[A-Za-z0-9](?:["
    r"A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|["
    r"01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]*[A-Za-z0-9]:)])"
)
IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)")
EMAIL_STANDINS = ["email@example.com", "firstname.lastname@example.org"]
# datatrove's list: addresses that did not answer pings when it was made
IP_STANDINS = ["22.214.171.124", "126.96.36.199", "188.8.131.52", "184.108.40.206", "220.127.116.11", "18.104.22.168"]


@dataclass
class PIIConfig:
    remove_emails: bool = field(default=True, metadata={"help": "replace e-mail addresses"})
    remove_ips: bool = field(default=True, metadata={"help": "replace IPv4 addresses"})
    only_remove_public_ips: bool = field(
        default=True, metadata={"help": "leave private, loopback and reserved addresses (127.0.0.1, 10.x) alone"}
    )
    email_replacement: list[str] = field(
        default_factory=lambda: list(EMAIL_STANDINS), metadata={"help": "stand-ins, used in turn"}
    )
    ip_replacement: list[str] = field(
        default_factory=lambda: list(IP_STANDINS), metadata={"help": "stand-ins, used in turn"}
    )

    def __post_init__(self):
        if not self.email_replacement:
            raise ValueError("email_replacement: give at least one stand-in address")
        if not self.ip_replacement:
            raise ValueError("ip_replacement: give at least one stand-in address")


class PIIFilter(DocumentFilter):
    """Never drops a document; rewrites it and counts replacements."""

    name = "pii"

    def __init__(self, config: PIIConfig | None = None):
        super().__init__()
        self.config = config or PIIConfig()
        self.replacements = {"emails": 0, "ips": 0}

    def scrub(self, text: str) -> str:
        c = self.config
        if c.remove_emails and "@" in text:
            text = self._replace(EMAIL, text, c.email_replacement, "emails", None)
        if c.remove_ips and "." in text:
            text = self._replace(IPV4, text, c.ip_replacement, "ips", self._is_personal_ip)
        return text

    def _is_personal_ip(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return ip.is_global or not self.config.only_remove_public_ips

    def _replace(self, pattern: re.Pattern, text: str, standins: list[str], counter: str, valid) -> str:
        turn = 0

        def substitute(match: re.Match) -> str:
            nonlocal turn
            if valid is not None and not valid(match.group(0)):
                return match.group(0)
            standin = standins[turn % len(standins)]
            turn += 1
            self.replacements[counter] += 1
            return standin

        return pattern.sub(substitute, text)

    def filter(self, doc: Document) -> bool:
        doc.text = self.scrub(doc.text)
        return True

    def take_replacements(self) -> dict[str, int]:
        counts, self.replacements = self.replacements, {"emails": 0, "ips": 0}
        return counts
