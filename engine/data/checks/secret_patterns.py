"""The key formats both secret scans know: the training-data check (Python's re, next to detect-secrets' plugins)
and the production-log masks (Rust's regex inside Polars). One list, written in the syntax both engines share (no
look-around, bounded repetitions), so a key the data check flags is a key the log import masks, and back.

Each entry: (kind, pattern). A pattern with groups named "key" and "value" is a keyword assignment: only the value
is the secret (the key's name and the separator stay readable)."""

from __future__ import annotations

# The names under which people keep secrets: aws_secret_access_key, AWS_SECRET_ACCESS_KEY, db_password, api-key,
# client_secret, x-auth-token, private_key... (the keyword anywhere in a name of at most 40+40 characters).
_KEY_NAME = (r"[A-Za-z0-9_-]{0,40}(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
             r"credential|auth)s?[A-Za-z0-9_-]{0,40}")

SECRET_PATTERNS: tuple[tuple[str, str], ...] = (
    # key=value, KEY: value, "key": "value", key = 'value' (YAML, .env, JSON, INI), 8 to 200 characters of value
    ("keyword assignment", r"(?i)\b(?P<key>" + _KEY_NAME + r"[\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?)"
                           r"(?P<value>[^\s\"',;]{8,200})"),
    ("payment key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,99}"),  # Stripe's secret, restricted, public keys
    ("openai", r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,200}"),
    ("huggingface", r"\bhf_[A-Za-z0-9]{30,200}"),
    ("google", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("aws access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
)


def looks_secret(value: str) -> bool:
    """An assigned value that is a credential rather than a word ("password: required", "token=expired"): it holds a
    digit or a symbol, or mixes cases, or is long (a sentence's closing punctuation is not a symbol)."""
    value = value.rstrip(".!?:)")
    if len(value) < 8:
        return False
    return len(value) >= 20 or not value.isalpha() or (value.lower() != value and value.upper() != value)
