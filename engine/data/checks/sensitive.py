"""Personal data and secrets in the text.

PII: e-mail addresses, phone numbers (Google's libphonenumber through `phonenumbers`: its matcher with strict
grouping finds numbers written as people write them and rejects dates, arithmetic, versions, ranges and ids; numbers
in international format from anywhere, national formats of the regions in STUDIO_PHONE_REGIONS), payment card
numbers (Luhn-valid, through python-stdnum), IBANs (checksum through python-stdnum) and IP addresses (validated by
`ipaddress`). Secrets: detect-secrets' pattern plugins (its
entropy plugins flag ordinary words in free text, so they are left out) plus the API-key formats it does not know.
A secret is reported by record and kind only: its value is never echoed, in the report or in logs.

Every scan is linear in the text: the patterns have bounded repetitions (or start only where a run starts), and
long text is scanned in bounded, overlapping windows (engine.data.checks.windows), so one record of tens of megabytes
on a single line costs what the same bytes cost in ordinary records.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from engine import settings
from engine.data.checks import windows
from engine.data.checks.secret_patterns import SECRET_PATTERNS, looks_secret
from engine.data.report import Finding, Fix
from engine.data.shapes import Record

# One pattern per kind, each behind a cheap test, so ordinary text costs one or two fast scans.
_PII = {
    # The local part starts where a run of its characters starts (no backtracking along a long run) and every part
    # is bounded by the limits of RFC 5321 (64-character local part, 63-character labels).
    "email": (re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
                         r"\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"), lambda t: "@" in t),
    "iban": (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), None),
    "card": (re.compile(r"(?<![\w.])(?:\d[ -]?){12,18}\d(?![\w.])"), None),
    "ipv4": (re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"), None),
    "ipv6": (re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?![\w:])"), lambda t: ":" in t),
}
_PII_NAMES = {"email": "e-mail address", "iban": "IBAN", "card": "card number", "ipv4": "IP address",
              "ipv6": "IP address", "phone": "phone number"}
_DIGIT_RUN = re.compile(r"\d[\d .()+-]{7,40}\d")  # 9+ characters of a number: card, phone, IBAN tail
_DOTTED = re.compile(r"\d\.\d{1,3}\.\d")

# Keys that detect-secrets 1.5 does not know (or knows only quoted), shared with the production-log masks.
_EXTRA_SECRETS = [(kind, re.compile(pattern)) for kind, pattern in SECRET_PATTERNS]
# Worth a detect-secrets scan: a 16+ character run mixing letters and digits (each run is matched once, from its
# start), a PEM header, or a keyword that is being assigned ("password: ...", "token=...").
_TOKEN_RUN = re.compile(r"(?<![A-Za-z0-9_\-/+=])[A-Za-z0-9_\-/+=]{16,}")
_SECRET_WORD = re.compile(r"-----BEGIN|(?i:pass(?:word|wd)?|pwd|secret|token|key|credential|auth)s?[\"']?\s{0,8}[:=]")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[A-Za-z]")


def _secret_hint(text: str) -> bool:
    if _SECRET_WORD.search(text):
        return True
    return any(_DIGIT.search(m.group(0)) and _LETTER.search(m.group(0)) for m in _TOKEN_RUN.finditer(text))
_ENTROPY_PLUGINS = {"Base64HighEntropyString", "HexHighEntropyString"}


def _valid(kind: str, value: str) -> bool:
    from stdnum import iban, luhn  # only the personal-data check needs it

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
    return True




def phone_regions() -> list[str]:
    """Regions whose national formats count (international +NN numbers count from everywhere)."""

    return [r.strip().upper() for r in settings.current().phone_regions.split(",")
            if r.strip()]


# A run of digits and the separators people write numbers with. Possessive: a run is consumed once, never retried
# from inside (linear whatever the run). Only runs of 7 to MAX_RUN_DIGITS digits can be a phone number and go to
# libphonenumber's matcher, on a short snippet around them: its matcher tries many readings of every digit group,
# which over a 200,000-character run of "12 34 56 ..." or "10.2.255.7..." took a minute per megabyte.
_NUMBER_RUN = re.compile(r"\+?\(?\d(?:[ \t.()/\-]{0,3}\d)*+")
MAX_RUN_DIGITS = 32  # E.164 numbers have at most 15 digits; two written side by side stay under this
_CONTEXT = 8  # characters either side of a run that the matcher sees (a "+", a bracket, an "ext.")
LONG_RUN = ("long_number_run", -1, -1)  # marks a text with a run over MAX_RUN_DIGITS (not searched for phones)


def _phones(text: str) -> list[tuple[str, int, int]]:
    import phonenumbers  # its metadata is large: only the personal-data check needs it
    from phonenumbers import Leniency  # its metadata is large: only the personal-data check needs it

    found: dict = {}
    # "+CC ..." states its country: valid in that country's plan is enough. National formats must also be grouped
    # as that country groups them (strict grouping), which is what tells a phone number from a date or an id.
    passes = [("ZZ", Leniency.VALID)] + [(region, Leniency.STRICT_GROUPING) for region in phone_regions()]
    for run in _NUMBER_RUN.finditer(text):
        if run.start() and (text[run.start() - 1].isalnum() or text[run.start() - 1] == "_"):
            continue  # digits inside a word (a hash, an id like ab12345678) are not a phone number
        digits = sum(c.isdigit() for c in run.group(0))
        if digits < 7:
            continue
        if digits > MAX_RUN_DIGITS:
            found[LONG_RUN] = LONG_RUN
            continue
        lo, hi = max(0, run.start() - _CONTEXT), min(len(text), run.end() + _CONTEXT)
        snippet = text[lo:hi]
        for region, leniency in passes:
            for match in phonenumbers.PhoneNumberMatcher(snippet, region, leniency=leniency):
                start, end = lo + match.start, lo + match.end
                if not _in_arithmetic(text, start, end):
                    found[(start, end)] = ("phone", start, end)
    return list(found.values())


_OPERATOR_AFTER = re.compile(r"\s*[=*/×÷]")
_OPERATOR_BEFORE = re.compile(r"[=*/×÷]\s*$")


def _in_arithmetic(text: str, start: int, end: int) -> bool:
    """2400-1100-700=600: dashes between numbers followed (or preceded) by an equals sign are a sum."""
    return bool(_OPERATOR_AFTER.match(text, end) or _OPERATOR_BEFORE.search(text[max(0, start - 3):start]))


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every validated PII span (scanned window by window: linear in the text)."""
    return [span for span in _find_all(text) if span[0] != LONG_RUN[0]]


def _find_all(text: str) -> list[tuple[str, int, int]]:
    """find_pii's spans, plus LONG_RUN when a run of digits was too long to be searched for phone numbers."""
    found = windows.spans(text, _find_pii_in) if len(text) > windows.WINDOW else _find_pii_in(text)
    if any(span[0] == LONG_RUN[0] for span in found):
        found = [span for span in found if span[0] != LONG_RUN[0]] + [LONG_RUN]
    # a card number also matches the phone pattern, and an overlap can cut a match: keep the first, longest span
    found.sort(key=lambda s: (s[1], -s[2]))
    kept, end = [], -1
    for span in found:
        if span[1] >= end:
            kept.append(span)
            end = span[2]
    return kept


def _find_pii_in(text: str) -> list[tuple[str, int, int]]:
    long_number = _DIGIT_RUN.search(text) is not None
    spans = _phones(text) if long_number else []
    for kind, (pattern, cheap) in _PII.items():
        if kind in ("card", "iban") and not long_number:
            continue
        if kind == "ipv4" and not _DOTTED.search(text):
            continue
        if cheap is not None and not cheap(text):
            continue
        for m in pattern.finditer(text):
            if _valid(kind, m.group(0)):
                spans.append((kind, m.start(), m.end()))
    return spans


def check_pii(records: list[Record]) -> Finding | None:
    details = {}
    seen: dict[str, frozenset] = {}  # a text shared by many records (the system prompt) is scanned once
    long_runs = []

    def kinds_in(text: str) -> frozenset:
        if text not in seen:
            seen[text] = frozenset(_PII_NAMES.get(k, k) for k, _, _ in _find_all(text))
        return seen[text]

    for rec in records:
        kinds = set().union(*(kinds_in(m["content"]) for m in rec.turns))
        if LONG_RUN[0] in kinds:
            long_runs.append(rec.location)
            kinds.discard(LONG_RUN[0])
        if kinds:
            details[rec.location] = ", ".join(sorted(kinds))
    if long_runs:  # said, never skipped silently
        for loc in long_runs:
            details[loc] = (details[loc] + "; " if loc in details else "") + \
                f"a run of more than {MAX_RUN_DIGITS} digits, not searched for phone numbers"
    if not details:
        return None
    locs = sorted(details)
    return Finding("pii",
                   "Personal data (e-mail addresses, phone, card or IBAN numbers, IP addresses): a model can repeat "
                   "it to other users. Redact it or drop the records.",
                   locs, Fix("redact_pii", "Redact the personal data"), details=details)


class SecretScanner:
    """detect-secrets' regex plugins. Use as a context manager: its settings are applied once for a whole batch."""

    def __init__(self):
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class  # heavy: loaded on first use

        classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
        self.plugins = sorted(cls.__name__ for cls in classes if cls.__name__ not in _ENTROPY_PLUGINS)
        self._settings: Any = None

    def __enter__(self) -> SecretScanner:
        from detect_secrets.settings import transient_settings  # heavy: loaded on first use

        self._settings = transient_settings({"plugins_used": [{"name": name} for name in self.plugins]})
        self._settings.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._settings.__exit__(*exc)

    def kinds(self, text: str) -> list[tuple[str, str]]:
        """(kind, secret value) pairs found in text. Values are for redaction only, never for display."""
        return [(kind, text[start:end]) for kind, start, end in self.spans(text)]

    def spans(self, text: str) -> list[tuple[str, int, int]]:
        """(kind, start, end) of every secret, window by window (linear in the text)."""
        if len(text) <= windows.WINDOW:
            return self._spans_in(text)
        return windows.spans(text, self._spans_in)

    def _spans_in(self, text: str) -> list[tuple[str, int, int]]:
        if not _secret_hint(text):
            return []
        from detect_secrets.core.scan import scan_line  # its plugins load on first use: only the secrets check needs it

        found = _extra_spans(text)
        start = 0
        for line in text.split("\n"):
            if _secret_hint(line):
                for s in scan_line(line):
                    at = line.find(s.secret_value) if s.secret_value else -1
                    if at >= 0:
                        found.append((s.type or "secret", start + at, start + at + len(s.secret_value or "")))
            start += len(line) + 1
        return found


def _extra_spans(text: str) -> list[tuple[str, int, int]]:
    found = []
    for kind, pattern in _EXTRA_SECRETS:
        for m in pattern.finditer(text):
            if "value" not in pattern.groupindex:
                found.append((kind, m.start(), m.end()))
            elif looks_secret(m.group("value")):
                found.append((kind, m.start("value"), m.end("value")))
    return found


def check_secrets(records: list[Record]) -> Finding | None:
    details = {}
    seen: dict[str, frozenset] = {}
    with SecretScanner() as scanner:
        for rec in records:
            for m in rec.turns:
                if m["content"] not in seen:
                    seen[m["content"]] = frozenset(kind for kind, _ in scanner.kinds(m["content"]))
            kinds = sorted(set().union(*(seen[m["content"]] for m in rec.turns)))
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
    """Every PII span replaced by its kind in brackets, in one pass."""
    pieces, cursor = [], 0
    for kind, start, end in find_pii(text):  # sorted and without overlaps
        pieces += [text[cursor:start], f"[{kind.upper().rstrip('46')}]"]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def redact_secrets(text: str, scanner: SecretScanner) -> str:
    """Every secret span replaced by [SECRET], in one pass (a str.replace per value would be quadratic)."""
    found = sorted((start, end) for _, start, end in scanner.spans(text))
    if not found:
        return text
    pieces, cursor = [], 0
    for start, end in found:
        if end <= cursor:
            continue
        pieces.append(text[cursor:max(start, cursor)])
        pieces.append("[SECRET]")
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)



_scanner: SecretScanner | None = None


def mask_secrets(text: str) -> str:
    """Replace secrets by [SECRET] for display (one scanner per process)."""
    global _scanner
    if not _secret_hint(text):
        return text
    if _scanner is None:
        _scanner = SecretScanner()
    with _scanner:
        return redact_secrets(text, _scanner)
