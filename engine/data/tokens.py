"""Token counting for the quality report, with the real tokenizer file and without importing transformers.

A conversation's length is the tokens of every message's content plus the chat template's own tokens per message
(measured once by rendering the model's template, so `<|im_start|>user\\n ... <|im_end|>\\n` is counted too).
The default tokenizer is the demo model's; `--tokenizer PATH` takes any folder (or file) with a `tokenizer.json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from engine.data.chat_template import render
from engine.demo.model import CHAT_TEMPLATE, train_tokenizer
from engine.errors import StudioError
from engine.store import workspace

FALLBACK_OVERHEAD = 4  # tokens per message when a template cannot be rendered (OpenAI's own estimate is 3-4)
PIECE_CHARS = 1 << 14  # 16k characters per piece of a long text
BATCH_TEXTS = 4096
BATCH_CHARS = 1 << 15  # 32k characters: at most ~32k tokens of Encodings at once (a few MB), whatever the text


def pieces(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """A long text cut where whitespace follows a non-space, which byte-level BPE never merges across, so the
    pieces' token counts add up to the whole's; a run of more than `size` characters without whitespace is cut
    anyway (its count may then differ by a token or two at each cut). One piece at a time: a 100 MB message is never
    copied whole."""
    if len(text) <= size:
        yield text
        return
    start = 0
    while len(text) - start > size:
        cut = start + size
        back = cut
        while back > start + size // 2 and not (text[back].isspace() and not text[back - 1].isspace()):
            back -= 1
        cut = back if back > start + size // 2 else cut
        yield text[start:cut]
        start = cut
    yield text[start:]


class TokenizerError(StudioError):
    pass


class TokenCounter:
    def __init__(self, tokenizer, chat_template: str | None, name: str):
        self.tokenizer = tokenizer
        self.name = name
        self.overhead = {role: self._overhead(chat_template, role) for role in ("system", "user", "assistant", "tool")}

    @classmethod
    def from_path(cls, path: Path | str) -> TokenCounter:
        from tokenizers import Tokenizer  # only the checks that count tokens need it

        path = Path(path)
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise TokenizerError(f"No tokenizer.json at {path}; give a model folder that has one.")
        try:
            tok = Tokenizer.from_file(str(file))
        except Exception as err:  # the tokenizers library raises a bare Exception for a bad file
            raise TokenizerError(f"Cannot read the tokenizer at {file} ({str(err)[:100]}).") from None
        return cls(tok, _chat_template(file.parent), file.parent.name)

    def count(self, texts: list[str]) -> list[int]:
        """Token count of each text. Identical texts (a shared system prompt) are encoded once. Long texts are
        encoded in pieces (see `pieces`), and batches are bounded in characters: an Encoding holds tens of bytes
        per token, so one 10 MB message encoded whole would take gigabytes."""
        unique = list(dict.fromkeys(texts))
        totals = [0] * len(unique)
        batch: list[str] = []
        owners: list[int] = []
        chars = 0

        def flush() -> None:
            for owner, enc in zip(owners, self.tokenizer.encode_batch_fast(batch, add_special_tokens=False)):
                totals[owner] += len(enc)
            batch.clear()
            owners.clear()

        for i, text in enumerate(unique):
            for piece in pieces(text):
                batch.append(piece)
                owners.append(i)
                chars += len(piece)
                if len(batch) >= BATCH_TEXTS or chars >= BATCH_CHARS:
                    flush()
                    chars = 0
        if batch:
            flush()
        lengths = dict(zip(unique, totals))
        return [lengths[t] for t in texts]

    def _overhead(self, template: str | None, role: str) -> int:
        if not template:
            return FALLBACK_OVERHEAD
        try:
            rendered = _render(template, [{"role": role, "content": "X"}])
        except Exception:  # any template error: fall back to the estimate rather than fail the report
            return FALLBACK_OVERHEAD
        return max(len(self.tokenizer.encode(rendered, add_special_tokens=False)) - 1, 0)


def _chat_template(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def _render(template: str, messages: list[dict]) -> str:
    return render(template, messages, specials={"bos_token": "", "eos_token": ""})


def default_tokenizer_path() -> Path:
    """The demo tokenizer: the demo model's if it is built, otherwise the same tokenizer trained on its own (< 1 s)."""
    ws = workspace.current()
    built = ws.demo_model / "tokenizer.json"
    if built.is_file():
        return ws.demo_model
    folder = ws.cache / "demo-tokenizer"
    if not (folder / "tokenizer.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "tokenizer.json.part"
        train_tokenizer().save(str(tmp))
        (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
        tmp.replace(folder / "tokenizer.json")
    return folder


def load_counter(path: Path | str | None = None) -> TokenCounter:
    return TokenCounter.from_path(Path(path) if path else default_tokenizer_path())
