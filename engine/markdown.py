"""Text that Markdown shows literally, for every place the studio writes Markdown: the dashboard's messages
(ui.text) and the model cards it exports (engine.models.card), which a hub or a viewer renders as Markdown and HTML.
User and model text (project names, system prompts, dataset names, reasons) goes through here."""

from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all also breaks the GFM
# autolinks (www., http:, e-mail), raw HTML (<, &) and Streamlit's :color[...] and :icon: directives.
_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
# GFM finds bare links (http://, www., e-mail) in the text *after* escapes are decoded, so escaping alone does not stop
# them: an invisible word joiner after each colon, before each @ and inside www. breaks the pattern, not the reading.
_AUTOLINK = re.compile(r"(\\:)|(\\@)|((?i:www)(?=\\\.))")
_JOINER = "\u2060"
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def md_escape(text: object) -> str:
    """Text that Markdown shows literally: no links (written or bare), images, HTML, formatting or directives."""
    escaped = _MD_SPECIAL.sub(r"\\\1", str(text))
    return _AUTOLINK.sub(lambda m: m.group(1) + _JOINER if m.group(1) else _JOINER + m.group(2) if m.group(2)
                         else m.group(3) + _JOINER, escaped)


def md_inline(text: object, limit: int = 500) -> str:
    """md_escape on one line (a line break in a name cannot open a heading, a list or a table row), at most `limit`
    characters of the original."""
    return md_escape(_LINE_BREAKS.sub(" ", str(text))[:limit])
