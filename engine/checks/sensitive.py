"""Personal data and secrets in the text.

PII: e-mail addresses, phone numbers, payment card numbers (Luhn-valid, through python-stdnum), IBANs (checksum
through python-stdnum) and IP addresses (validated by `ipaddress`). Secrets: detect-secrets' pattern plugins (its
entropy plugins flag ordinary words in free text, so they are left out) plus the API-key formats it does not know.
A secret is reported by record and kind only: its value is never echoed, in the report or in logs.
"""

from __future__ import annotations

import ipaddress
import re

from engine.report import Finding, Fix
from engine.shapes import Record

_PII = re.compile(
    r"(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|(?P<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b)"
    r"|(?P<card>(?<![\w.])(?:\d[ -]?){12,18}\d(?![\w.]))"
    r"|(?P<ipv4>(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]))"
    r"|(?P<ipv6>(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?![\w:]))"
    r"|(?P<phone>(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}[ .-]\d{3,4}[ .-]?\d{3,4}(?![\w]))"
)
_PII_NAMES = {"email": "e-mail address", "iban": "IBAN", "card": "card number", "ipv4": "IP address",
              "ipv6": "IP address", "phone": "phone number"}
_PII_HINT = re.compile(r"@|\d{3}|[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}:")

# Keys that detect-secrets 1.5 does not know; kept short on purpose.
_EXTRA_SECRETS = re.compile(
    r"(?P<openai>\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,})|(?P<huggingface>\bhf_[A-Za-z0-9]{30,})"
    r"|(?P<google>\bAIza[0-9A-Za-z_-]{35})")
_SECRET_HINT = re.compile(r"[A-Za-z0-9_\-/+=]{16,}|-----BEGIN|(?i:password|passwd|secret|token|api[_-]?key)")
_ENTROPY_PLUGINS = {"Base64HighEntropyString", "HexHighEntropyString"}


def _valid(kind: str, value: str) -> bool:
    from stdnum import iban, luhn

    digits = re.sub(r"\D", "", value)
    if kind == "card":
        return 13 <= len(digits) <= 19 and digits[0] in "3456" and luhn.is_valid(digits)
    if kind == "iban":
        return iban.is_valid(value)
    if kind in ("ipv4", "ipv6"):
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return False
        return not (ip.is_loopback or ip.is_unspecified)
    if kind == "phone":
        return 9 <= len(digits) <= 15 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
    return True


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every validated PII span."""
    if not _PII_HINT.search(text):
        return []
    spans = []
    for m in _PII.finditer(text):
        kind = m.lastgroup
        if _valid(kind, m.group(0)):
            spans.append((kind, m.start(), m.end()))
    return spans


def check_pii(records: list[Record]) -> Finding | None:
    details = {}
    for rec in records:
        kinds = sorted({_PII_NAMES[k] for m in rec.messages for k, _, _ in find_pii(m["content"])})
        if kinds:
            details[rec.location] = ", ".join(kinds)
    if not details:
        return None
    locs = sorted(details)
    return Finding("pii",
                   "Personal data (e-mail addresses, phone, card or IBAN numbers, IP addresses): a model can repeat "
                   "it to other users. Redact it or drop the records.",
                   locs, Fix("redact_pii", "Redact the personal data"), details=details)


class SecretScanner:
    """detect-secrets' regex plugins, configured once."""

    def __init__(self):
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

        self.plugins = sorted(cls.__name__ for cls in get_mapping_from_secret_type_to_class().values()
                              if cls.__name__ not in _ENTROPY_PLUGINS)

    def kinds(self, text: str) -> list[tuple[str, str]]:
        """(kind, secret value) pairs found in text. Values are for redaction only, never for display."""
        if not _SECRET_HINT.search(text):
            return []
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import transient_settings

        found = [(m.lastgroup, m.group(0)) for m in _EXTRA_SECRETS.finditer(text)]
        with transient_settings({"plugins_used": [{"name": name} for name in self.plugins]}):
            for line in text.splitlines():
                if _SECRET_HINT.search(line):
                    found += [(s.type, s.secret_value) for s in scan_line(line) if s.secret_value]
        return found


def check_secrets(records: list[Record]) -> Finding | None:
    scanner = SecretScanner()
    details = {}
    for rec in records:
        kinds = sorted({kind for m in rec.messages for kind, _ in scanner.kinds(m["content"])})
        if kinds:
            details[rec.location] = ", ".join(kinds)
    if not details:
        return None
    locs = sorted(details)
    return Finding("secret",
                   "What looks like an API key, token or private key (values not shown): revoke the key, then "
                   "redact it or drop the records.", locs,
                   Fix("redact_secrets", "Redact the secrets"), details=details)


def redact_pii(text: str) -> str:
    for kind, start, end in sorted(find_pii(text), key=lambda s: -s[1]):
        text = text[:start] + f"[{kind.upper().rstrip('46')}]" + text[end:]
    return text


def redact_secrets(text: str, scanner: SecretScanner) -> str:
    for _, value in scanner.kinds(text):
        text = text.replace(value, "[SECRET]")
    return text



_scanner: SecretScanner | None = None


def mask_secrets(text: str) -> str:
    """Replace secrets by [SECRET] for display (one scanner per process)."""
    global _scanner
    if not _SECRET_HINT.search(text):
        return text
    if _scanner is None:
        _scanner = SecretScanner()
    return redact_secrets(text, _scanner)
