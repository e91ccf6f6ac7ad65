"""The serving gateway in front of the engine: a request that runs out of time is a 504, /health tells the truth
until the engine answers again, and the caps hold for any client. The engine here is a small HTTP server that
answers slowly on demand (the real engine behind the real gateway is in test_models' serving test)."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from engine.models import gateway


class _Engine:
    def __init__(self):
        self.delay, self.healthy, self.probe_ok = 0.0, True, True
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200 if outer.healthy else 500, {"status": "ok" if outer.healthy else "down"})

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if request.get("max_tokens") == 1:  # the gateway's probe
                    self._send(200 if outer.probe_ok else 500, {"choices": [{"message": {"content": "H"}}]})
                    return
                time.sleep(outer.delay)
                self._send(200, {"choices": [{"message": {"content": "Hello."}}], "max_tokens": request["max_tokens"]})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def engine():
    made = _Engine()
    yield made
    made.server.shutdown()


def test_a_request_past_its_timeout_is_a_504_and_health_says_so_until_the_engine_answers(engine, demo_model):
    from starlette.testclient import TestClient

    limits = gateway.Limits(context_tokens=2048, max_tokens_cap=256, request_timeout_s=0.5)
    app = gateway.build_app(engine.url, limits, gateway.PromptCounter(demo_model), api_key="k" * 20)
    auth = {"Authorization": "Bearer " + "k" * 20}
    hello = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}
    with TestClient(app) as client:
        answered = client.post("/v1/chat/completions", json=hello, headers=auth)
        assert answered.status_code == 200 and answered.json()["max_tokens"] == 256  # the cap, not the engine's
        assert client.get("/health").status_code == 200
        engine.delay, engine.probe_ok = 3.0, False  # the engine hangs on this one
        late = client.post("/v1/chat/completions", json=hello, headers=auth)
        assert late.status_code == 504 and "did not answer within 0.5 s" in late.json()["error"]["message"]
        sick = client.get("/health")
        assert sick.status_code == 503 and "ran out of time" in sick.json()["reason"]
        engine.probe_ok = True  # it answers again
        assert client.get("/health").status_code == 200
        engine.healthy = False
        assert client.get("/health").status_code == 503
        assert client.post("/v1/chat/completions", json=hello).status_code == 401
        chunked = client.post("/v1/chat/completions", content=iter([b"x" * 65536] * 4), headers=auth)
        assert chunked.status_code == 413  # no Content-Length: the body is counted as it comes
