"""Masking of personal data and secrets in production logs, at import, before anything is stored.

Production logs are large (a million rows a day is ordinary), so the masks run inside Arrow's compute kernels with
RE2 patterns: linear time whatever the text, and no Python loop per row. They are broader than the training-data
checks (engine.data.checks.sensitive, which must not flag look-alikes a person then has to read): here a false mask
costs a few characters of a log, a missed one stores a customer's number in clear."""

from __future__ import annotations

# (pattern, replacement); RE2 syntax (no look-behind). Order matters: secrets before the digit runs they contain.
MASKS = (
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", "[SECRET]"),
    (r"\b(?:sk|pk|rk)-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}", "[SECRET]"),
    (r"\bhf_[A-Za-z0-9]{30,}", "[SECRET]"),
    (r"\bAIza[0-9A-Za-z_-]{35}", "[SECRET]"),
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "[SECRET]"),
    (r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", "[SECRET]"),
    (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "[SECRET]"),
    (r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "[SECRET]"),
    (r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[:=]\s*[\"']?)[^\s\"',;]{6,}", r"\1\2[SECRET]"),
    (r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{12,}", r"\1[SECRET]"),
    (r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,24}", "[EMAIL]"),
    (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", "[IBAN]"),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[IP]"),
    (r"\+?\(?\d[\d ().-]{7,}\d", "[NUMBER]"),  # phones, cards, account numbers: 9+ digits and separators
)


# One pass that finds the rows any mask could touch (RE2 runs the alternation as one automaton); only those rows go
# through the replacements, so clean rows (most of a log) cost one scan, not one per pattern.
ANY = "|".join(f"(?:{pattern.removeprefix('(?i)')})" for pattern, _ in MASKS)


def mask_array(array):
    """A pyarrow string array (or chunked array: a file as read, not copied into one piece first) with every mask
    applied (nulls stay null)."""
    import pyarrow as pa  # Arrow's kernels: only imports need them
    import pyarrow.compute as pc  # (same)

    touched = pc.fill_null(pc.match_substring_regex(array, pattern=ANY, ignore_case=True), False)
    count = pc.sum(touched).as_py() or 0
    if count == 0:
        return array
    subset = pc.filter(array, touched)
    for pattern, replacement in MASKS:
        subset = pc.replace_substring_regex(subset, pattern=pattern, replacement=replacement)
    if count == len(array):
        return subset
    if isinstance(array, pa.ChunkedArray):
        array, touched = array.combine_chunks(), touched.combine_chunks()
    positions = pc.indices_nonzero(touched)
    out = array.to_pylist() if len(array) < 1000 else None
    if out is not None:
        for i, value in zip(positions.to_pylist(), subset.to_pylist()):
            out[i] = value
        return pa.array(out, pa.string())
    return _scatter(array, positions, subset)


def _scatter(array, positions, values):
    """array with array[positions] replaced by values (large arrays: through numpy object arrays)."""
    import pyarrow as pa  # Arrow's kernels: only imports need them

    merged = array.to_numpy(zero_copy_only=False)
    merged[positions.to_numpy()] = values.to_numpy(zero_copy_only=False)
    return pa.array(merged, pa.string())


def mask_text(text: str) -> str:
    """One string through the same masks (for values read outside Arrow)."""
    import pyarrow as pa  # Arrow's kernels: only imports need them

    return mask_array(pa.array([text], pa.string()))[0].as_py()
