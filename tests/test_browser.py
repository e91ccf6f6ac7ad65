"""One real browser: the dashboard served by `streamlit run`, driven by Playwright in Debian's headless Chromium.

Uploads a file on the Data page, imports it, and sees its warnings on the Quality page.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT, chat

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                       reason="Debian's chromium is not installed (.ci/run installs it; CI must run this test)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(ws):
    port = free_port()
    env = {**os.environ, "STUDIO_HOME": str(ws.root)}
    log = (ws.root / "streamlit.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + (ws.root / "streamlit.log").read_text()[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_upload_and_see_warnings(server, ws, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from engine import projects

    projects.create_project("Browser test")
    added = subprocess.run([sys.executable, "-m", "engine.cli", "users", "add", "ana", "--role", "analyst",
                            "--password-stdin"], input="browser password\n", text=True, capture_output=True,
                           cwd=ROOT, env={**os.environ, "STUDIO_HOME": str(ws.root)}, timeout=60)
    assert added.returncode == 0, added.stderr
    rows = [chat(i) for i in range(15)] + [chat(2), chat(3), chat(40, answer="ok")]
    data = tmp_path / "upload.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    with sync_playwright() as p:
        # A fresh profile of its own (the persistent-context form is how Playwright takes --user-data-dir).
        browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                       args=ARGS, headless=True,
                                                       viewport={"width": 1400, "height": 1000})
        page = browser.new_page()
        page.goto(server, wait_until="domcontentloaded")
        # signed out, the studio shows only the sign-in form; the account was made by `studio users add`
        expect(page.get_by_role("link", name="1 · Data")).to_have_count(0)
        page.get_by_label("User name").fill("ana")
        page.get_by_label("Password", exact=True).fill("browser password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("ana (analyst)")).to_be_visible(timeout=60_000)
        page.get_by_role("link", name="1 · Data").click()
        page.locator("input[type=file]").first.set_input_files(str(data))
        page.get_by_role("button", name="Import as a dataset version").click(timeout=60_000)
        expect(page.get_by_text("Imported 18 records as version v1")).to_be_visible(timeout=60_000)
        page.get_by_text("Review the warnings and fix them in Quality").click()
        expect(page.get_by_text("exact_duplicate").first).to_be_visible(timeout=60_000)
        # the shared sidebar survives page links (it did not while the page folder was called pages/)
        expect(page.get_by_text("Workspace", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="2 · Quality")).to_be_visible()
        expect(page.get_by_text("short_output").first).to_be_visible()
        page.get_by_text("exact_duplicate").first.click()
        expect(page.get_by_role("button", name="Drop the extra copies (keeps the first)")).to_be_visible()
        page.screenshot(path=str(ws.root / "quality.png"), full_page=True)
        browser.close()
