"""The serving gateway: the address clients call, in front of the engine's own server (`transformers serve` or
vLLM, bound to 127.0.0.1 on a private port). The engines serve models well but `transformers serve` has no API key,
takes any prompt (one of 1 MB held it for minutes while its /health kept answering 200) and has no request timeout.
The gateway adds exactly those, and nothing else: it forwards the OpenAI API unchanged.

- An API key (`Authorization: Bearer KEY`) on every /v1 route when one is set; required when bound beyond this host.
- Refused before any work, with a 4xx and one sentence: a body over the byte cap, a prompt over the model's context
  less max_tokens (counted with the model's own template and tokenizer), max_tokens over the cap.
- A request that runs past the timeout gets a 504, and /health says 503 until a one-token probe answers again; /health
  also says 503 while the engine's own health check fails.

Starlette and uvicorn (already the engine's own stack) serve it, httpx forwards."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

PROBE = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 0}


@dataclass
class Limits:
    context_tokens: int  # the model's context length
    max_tokens_cap: int = 1024  # the most new tokens one request may ask for
    request_timeout_s: float = 120.0
    body_bytes: int = 0  # 0: derived from the context (16 bytes a token, plus room for the JSON)

    def body_cap(self) -> int:
        return self.body_bytes or self.context_tokens * 16 + 65536


@dataclass
class Health:
    timed_out_at: float | None = None  # the last request that ran out of time, until a probe answers again
    in_flight: dict[int, float] = field(default_factory=dict)


def _error(status: int, message: str):
    from starlette.responses import JSONResponse  # only the serving job needs the web stack

    return JSONResponse({"error": {"message": message, "type": "invalid_request_error" if status < 500 else
                                   "server_error", "code": status}}, status_code=status)


class PromptCounter:
    """Prompt tokens as the engine will count them: the model's chat template, rendered under its limits, through
    its own tokenizer (the `tokenizers` library: no torch in the gateway)."""

    def __init__(self, model_folder: Path):
        from engine.data.chat_template import ModelTemplate, template_messages

        self.template = ModelTemplate.from_folder(model_folder)
        self._messages = template_messages

    def count(self, messages: list[dict]) -> int:
        text = self.template.render(self._messages(messages, self.template), add_generation_prompt=True)
        return len(self.template.tokenizer.encode(text, add_special_tokens=False).ids)


class Gateway:
    """The two routes, their shared client and what /health knows."""

    def __init__(self, upstream: str, limits: Limits, counter: PromptCounter, api_key: str | None):
        import httpx  # only the serving job needs the web stack

        self.limits, self.counter, self.api_key, self.health = limits, counter, api_key, Health()
        self.client = httpx.AsyncClient(base_url=upstream,
                                        timeout=httpx.Timeout(limits.request_timeout_s, connect=5.0))

    async def check_health(self, request):
        import httpx  # (same)
        from starlette.responses import JSONResponse  # (same)

        try:
            engine_ok = (await self.client.get("/health", timeout=3.0)).status_code == 200
        except httpx.HTTPError:
            engine_ok = False
        if not engine_ok:
            return JSONResponse({"status": "unhealthy", "reason": "the engine does not answer"}, status_code=503)
        stuck = [t for t in self.health.in_flight.values() if time.monotonic() - t > self.limits.request_timeout_s]
        if self.health.timed_out_at is not None or stuck:
            try:  # a one-token probe: the engine answers again, or it does not
                probe = await self.client.post("/v1/chat/completions",
                                               json={**PROBE, "model": _model_name(request)}, timeout=10.0)
                answered = probe.status_code == 200
            except httpx.HTTPError:
                answered = False
            if not answered:
                return JSONResponse({"status": "unhealthy", "reason": "a request ran out of time and a one-token "
                                     "probe did not answer either"}, status_code=503)
            self.health.timed_out_at = None
        return JSONResponse({"status": "ok"})

    async def forward(self, request):
        import hmac

        import httpx  # (same)
        from starlette.responses import Response  # (same)

        if self.api_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return _error(401, "Missing or wrong API key: send 'Authorization: Bearer KEY'.")
        body = await _read_capped(request, self.limits.body_cap())
        if body is None:
            return _error(413, f"The request is over {self.limits.body_cap():,} bytes, more than this model's "
                               "context can hold.")
        refused, body = _checked(request.url.path, body, self.limits, self.counter)
        if refused is not None:
            return refused
        ident = id(request)
        self.health.in_flight[ident] = time.monotonic()
        try:
            reply = await self.client.request(request.method, request.url.path, content=body, headers={
                "content-type": request.headers.get("content-type", "application/json")})
        except httpx.TimeoutException:
            self.health.timed_out_at = time.monotonic()
            return _error(504, f"The model did not answer within {self.limits.request_timeout_s:g} s.")
        except httpx.HTTPError:
            return _error(502, "The model's engine did not answer.")
        finally:
            self.health.in_flight.pop(ident, None)
        return Response(reply.content, status_code=reply.status_code,
                        media_type=reply.headers.get("content-type", "application/json"))


def build_app(upstream: str, limits: Limits, counter: PromptCounter, api_key: str | None = None):
    """The gateway's Starlette app, forwarding to `upstream` (http://127.0.0.1:PORT)."""
    from starlette.applications import Starlette  # only the serving job needs the web stack
    from starlette.routing import Route  # (same)

    gateway = Gateway(upstream, limits, counter, api_key)
    app = Starlette(routes=[Route("/health", gateway.check_health, methods=["GET"]),
                            Route("/v1/{path:path}", gateway.forward, methods=["GET", "POST"])])
    app.state.model_name = ""
    return app


def _model_name(request) -> str:
    return request.app.state.model_name


DRAIN_BYTES = 16 << 20  # an over-long body up to this size is read and dropped, so its client can read the 413


async def _read_capped(request, cap: int) -> bytes | None:
    """The body, or None once it grows past the cap (a client may lie about or omit Content-Length). Past the cap
    the rest is read and dropped up to DRAIN_BYTES (nothing kept: memory stays at the cap); beyond, the connection
    is cut."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_BYTES:
            break
        if size <= cap:
            chunks.append(chunk)
    return b"".join(chunks) if size <= cap else None


def _checked(path: str, body: bytes, limits: Limits, counter: PromptCounter):
    """(a refusal or None, the body to forward): chat completions checked against the caps, max_tokens set to the
    cap when the client left it out (an engine's own default can be the whole context)."""
    if not path.endswith("/chat/completions") or not body:
        return None, body
    try:
        request = json.loads(body)
    except ValueError:
        return _error(400, "The request body is not valid JSON."), body
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        return _error(400, "A chat completion needs a 'messages' list."), body
    asked = request.get("max_completion_tokens", request.get("max_tokens"))
    if asked is None:
        asked = request["max_tokens"] = min(limits.max_tokens_cap, limits.context_tokens // 2)
    if not isinstance(asked, int) or asked < 1 or asked > limits.max_tokens_cap:
        return _error(400, f"max_tokens must be a whole number from 1 to {limits.max_tokens_cap}."), body
    try:
        prompt = counter.count([m for m in request["messages"] if isinstance(m, dict)])
    except Exception:  # noqa: BLE001 - a template refusal or a malformed message: the client's request
        return _error(400, "The messages cannot be rendered with this model's chat template."), body
    room = limits.context_tokens - asked
    if prompt > room:
        return _error(400, f"The prompt is {prompt:,} tokens; this model takes at most {room:,} with max_tokens "
                           f"{asked} (context {limits.context_tokens:,})."), body
    return None, json.dumps(request).encode("utf-8")
