"""Bounded views of long text, so scans stay linear in time and bounded in memory whatever the record size.

A record can be one line of tens of megabytes. Every pattern scan of user text runs over windows of at most
WINDOW + OVERLAP characters that overlap by OVERLAP, so the work per window is bounded whatever a pattern does, and
any match of at most OVERLAP characters lies whole inside some window (e-mail addresses, phone and card numbers,
IBANs, IP addresses and API keys all do). Matches found twice in an overlap are reported once.

Checks that build a set or list per word (near duplicates, repetition, contradictions) look at `sample(text)`: the
whole text up to SAMPLE characters, else its first and last SAMPLE / 2, so a 10 MB record does not become millions
of Python strings.
"""

from __future__ import annotations

from collections.abc import Iterator

WINDOW = 8192
OVERLAP = 512  # longer than anything the scans look for (an e-mail address is at most 320 characters)


SAMPLE = 100_000


def sample(text: str, limit: int = SAMPLE) -> str:
    if len(text) <= limit:
        return text
    return text[:limit // 2] + "\n" + text[-(limit // 2):]


def windows(text: str, window: int = WINDOW, overlap: int = OVERLAP) -> Iterator[tuple[int, str]]:
    """(offset, piece) pairs covering text; a short text is one piece."""
    if len(text) <= window + overlap:
        yield 0, text
        return
    start = 0
    while start < len(text):
        end = min(len(text), start + window + overlap)
        yield start, text[start:end]
        if end == len(text):
            return
        start += window


def spans(text: str, finder) -> list[tuple[str, int, int]]:
    """(kind, start, end) from finder(piece) -> [(kind, start, end)] run on every window, in text coordinates,
    without the duplicates an overlap produces."""
    seen: set[tuple[str, int, int]] = set()
    out = []
    for offset, piece in windows(text):
        for kind, start, end in finder(piece):
            span = (kind, offset + start, offset + end)
            if span not in seen:
                seen.add(span)
                out.append(span)
    return out
