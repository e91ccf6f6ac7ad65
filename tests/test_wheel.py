"""The package installs anywhere: the wheel built from this tree holds the engine, the ui helpers and the dashboard
(app.py, pages/, .streamlit/config.toml as studio_app), and once installed into a fresh virtual environment,
`studio ui` serves the installed dashboard from another folder, whose app runs without an exception."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request

from conftest import ROOT, eventually


def test_the_wheel_lists_every_package_of_the_tree():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    tree = {str(p.parent.relative_to(ROOT)).replace("/", ".") for top in ("engine", "ui")
            for p in (ROOT / top).rglob("__init__.py")}
    assert set(declared) == tree | {"studio_app", "studio_app.pages"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_installed_wheel_serves_the_dashboard_from_another_folder(tmp_path):
    wheels = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("finetune_studio-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The libraries come from the project's environment (a plain path: its .pth files, the editable install of
    # this checkout among them, are not read); the studio itself only from the wheel.
    with open(os.path.join(site, "deps.pth"), "w", encoding="utf-8") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-compile", str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STUDIO_DB_URL")}
    env["STUDIO_HOME"] = str(tmp_path / "ws")
    where = subprocess.run([python, "-c", "import engine, studio_app; print(engine.__file__); "
                            "print(list(studio_app.__path__)[0])"], cwd=elsewhere, env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    assert all(path.startswith(site) for path in where), where  # not this checkout
    app = os.path.join(where[1], "app.py")
    ran = subprocess.run([python, "-c", "from streamlit.testing.v1 import AppTest; import sys; "
                          f"at = AppTest.from_file({app!r}, default_timeout=120).run(); "
                          "sys.exit(1 if at.exception else 0)"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    port = _free_port()
    server = subprocess.Popen([venv / "bin" / "studio", "ui", "--headless", "--port", str(port)], cwd=elsewhere,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def healthy() -> bool:
            assert server.poll() is None, server.communicate()[0][-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        eventually(healthy, 120, 0.25)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"<noscript>" in r.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
