"""Masking of personal data and secrets in production logs, at import, before anything is stored.

Production logs are large (a million rows a day is ordinary), so the masks run inside Polars on whole columns with
Rust's `regex` engine: like RE2 it guarantees linear time whatever the text (no backtracking), it finds literal
prefixes with SIMD, and Polars spreads a column over the cores. The masks are broader than the training-data checks
(engine.data.checks.sensitive, which must not flag look-alikes a person then has to read): here a false mask costs a
few characters of a log, a missed one stores a customer's number in clear. The key formats are the training-data
check's own (engine.data.checks.secret_patterns): one list for both scans."""

from __future__ import annotations

import hashlib
import hmac

from engine.data.checks.secret_patterns import SECRET_PATTERNS
from engine.store import app_secrets

USER_SALT = "monitor_user_salt"


def _shared(pattern: str) -> str:
    """A shared pattern as Polars' replacement wants it: a keyword assignment keeps its key, the rest is the secret."""
    return "${key}[SECRET]" if "(?P<value>" in pattern else "[SECRET]"


# (pattern, replacement); Rust regex syntax (no look-around; `${1}` in replacements). Order matters: secrets before
# the digit runs they contain. \d, \w and \b are Unicode-aware in Rust regex: other scripts' digits are masked too.
MASKS = (
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", "[SECRET]"),
    *((pattern, _shared(pattern)) for _, pattern in SECRET_PATTERNS),
    (r"\b(?:sk|pk|rk)[-_](?:proj-|ant-|live[-_]|test[-_])?[A-Za-z0-9_-]{20,}", "[SECRET]"),
    (r"\bhf_[A-Za-z0-9]{30,}", "[SECRET]"),
    (r"\bAIza[0-9A-Za-z_-]{35}", "[SECRET]"),
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "[SECRET]"),
    (r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", "[SECRET]"),
    (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "[SECRET]"),
    (r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "[SECRET]"),
    (r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[:=]\s*[\"']?)[^\s\"',;]{6,}", "${1}${2}[SECRET]"),
    (r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{12,}", "${1}[SECRET]"),
    (r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,24}", "[EMAIL]"),
    (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", "[IBAN]"),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[IP]"),
    (r"\+?\(?\d[\d ().-]{7,}\d", "[NUMBER]"),  # phones, cards, account numbers: 9+ digits and separators
)

# One pass that finds the rows any mask could touch (the alternation runs as one automaton); only those rows go
# through the replacements, so clean rows (most of a log) cost one scan, not one per pattern. Case-insensitive:
# a superset of what the masks match, which is all a filter needs.
ANY = "(?i)" + "|".join(f"(?:{pattern.removeprefix('(?i)')})" for pattern, _ in MASKS)


def mask(series):
    """A Polars string column with every mask applied (nulls stay null; any other type is cast to text first)."""
    import polars as pl  # the log engine: only imports and reports need it

    text = series.cast(pl.String)
    touched = text.str.contains(ANY).fill_null(False)
    if not touched.any():
        return text
    subset = text.filter(touched)
    for pattern, replacement in MASKS:
        subset = subset.str.replace_all(pattern, replacement)
    return text.scatter(touched.arg_true(), subset)


def mask_text(text: str) -> str:
    """One string through the same masks (for values read outside a log)."""
    import polars as pl  # the log engine: only imports and reports need it

    return str(mask(pl.Series([text], dtype=pl.String))[0])


def pseudonymise(series):
    """User ids (e-mails, account numbers) replaced by "u-" + 16 hex digits of an HMAC-SHA256 under the workspace's
    own salt: the same user is the same pseudonym in every import of this workspace (counts per user still work),
    and nobody without the database can test a guessed e-mail against it. Nulls stay null."""
    import polars as pl  # the log engine: only imports and reports need it

    text = series.cast(pl.String)
    salt = app_secrets.get(USER_SALT)
    pseudonyms = {value: "u-" + hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()[:16]
                  for value in text.drop_nulls().unique().to_list()}  # one HMAC per user, not per row
    return text.replace_strict(pseudonyms, default=None, return_dtype=pl.String) if pseudonyms else text
