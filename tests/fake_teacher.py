"""A small OpenAI-compatible chat endpoint for the augmentation tests: what a real provider does, on demand.

Replies: a paraphrase is the request's words in another order (one per choice of `n`), a translation is the text
tagged with the language; JSON when the prompt asks for JSON. Behaviours by request number (1-based) or by text:
`status` {n: (code, headers, body)} answers request n with that status; `malformed` {n} answers it with a body that
is not JSON; `copy` {source text: reply text} answers a prompt containing the source text with the reply text;
`delay` seconds before every reply. Every prompt received is kept in `prompts` (in order)."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeTeacher:
    def __init__(self, delay: float = 0.0):
        self.status: dict[int, tuple[int, dict, str]] = {}
        self.malformed: set[int] = set()
        self.copy: dict[str, str] = {}
        self.delay = delay
        self.prompts: list[str] = []
        self.keys: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeTeacher:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reply(self, prompt: str, n: int, number: int) -> list[str]:
        for source, text in self.copy.items():
            if source in prompt:
                return [text] * n
        if "Reply with JSON only" in prompt:
            return [json.dumps({"user": f"Question {number}: how do I care for a {w} plant in winter?",
                                "assistant": f"Keep the {w} plant bright, water it little, and keep it warm."})
                    for w in ["fern", "cactus", "ivy", "palm"][:n]]
        text = prompt.rsplit("\n\n", 1)[-1].removeprefix("Request:\n")
        if prompt.startswith("Translate this text into"):
            language = prompt.split("into ", 1)[1].split(".", 1)[0]
            if language != "English":
                return [f"[{language}] {text}"]
            text = text.split("] ", 1)[-1]  # back: the words come back in another order, as translations do
        words = re.findall(r"\S+", text)
        out = []
        for k in range(n if not prompt.startswith("Translate") else 1):
            shuffled = list(words)
            random.Random(f"{text}:{k}").shuffle(shuffled)
            out.append("«" + " ".join(shuffled) + "»")
        return out

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                prompt = body["messages"][-1]["content"]
                with fake.lock:
                    fake.prompts.append(prompt)
                    fake.keys.append(self.headers.get("Authorization", ""))
                    number = len(fake.prompts)
                time.sleep(fake.delay)
                if number in fake.status:
                    code, headers, text = fake.status[number]
                    self._send(code, text.replace("{key}", self.headers.get("Authorization", "")), headers)
                    return
                if number in fake.malformed:
                    self._send(200, '{"choices": [', {})
                    return
                texts = fake.reply(prompt, int(body.get("n") or 1), number)
                self._send(200, json.dumps({
                    "id": f"c{number}", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": i, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 10 * len(texts),
                              "total_tokens": 20 + 10 * len(texts)}}), {})

            def _send(self, code: int, text: str, headers: dict) -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the job was killed mid-request: as a real server
                    pass

        return Handler
