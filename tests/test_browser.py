"""The rendered book and the interactive notebook in a real browser (headless Chromium).

Run with ``make test-browser`` (they are also part of ``make test`` and CI).  They need
Debian's ``chromium`` and the npm package ``playwright-core`` in tests/browser
(``npm install --prefix tests/browser``; .ci/run does both).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
BROWSER_DIR = REPO / "tests" / "browser"
HTML = REPO / "_build" / "html"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _need_tools():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    if shutil.which("node") is None or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip("playwright-core missing: npm install --prefix tests/browser")


@pytest.fixture(scope="module")
def book():
    _need_tools()
    jb = Path(sys.executable).parent / "jupyter-book"
    p = subprocess.run([str(jb), "build", str(REPO), "-W", "-n", "--keep-going"], capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return HTML


def _check(pages):
    p = subprocess.run(["node", str(BROWSER_DIR / "check_pages.js"), *map(str, pages)], capture_output=True,
                       text=True, timeout=600, cwd=BROWSER_DIR)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_notebook_pages_load_without_errors(book):
    pages = sorted((book / "notebooks").glob("*.html"))
    assert len(pages) >= 3
    report = _check(pages + [book / "book" / "intro.html"])
    for page, r in report.items():
        name = Path(page).name
        assert r["page_errors"] == [], (name, r["page_errors"])
        assert r["console_errors"] == [], (name, r["console_errors"])
        assert r["failed_requests"] == [], (name, r["failed_requests"])
        assert r["external_requests"] == [], (name, "the book must work offline", r["external_requests"])
        if name.startswith(("01_", "02_", "05_")):
            assert r["images"] > 0, (name, "no figures")
        assert r["raw_pipe_tables"] == 0, (name, "a Markdown table shows as raw | ... | text")
        assert r["wide_tables"] == [], (name, "a table is wider than the page (the reader must scroll sideways "
                                         "to see its last columns): shorten its columns", r["wide_tables"])
    mnist = next(r for p, r in report.items() if Path(p).name.startswith("02_"))
    assert mnist["output_tables"] >= 3, ("the MNIST chapter's tables did not render as <table>", mnist)
    inter = next(r for p, r in report.items() if Path(p).name.startswith("05_"))
    assert inter["animations"] >= 2, "the chain animations (to_jshtml) are missing"
    assert inter["widget_scripts"] > 0 and inter["widget_views"] > 0, "widget views did not render"
    assert inter["cut_labels"] == [], ("widget labels are cut off", inter["cut_labels"])
    assert inter["empty_readouts"] == 0, "slider readouts without a value"
    # the MNIST chain animation: 16 digits at about 80 px each (8 per row)
    assert max((w for w, h in inter["animation_frames"]), default=0) >= 500, inter["animation_frames"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_slider_changes_the_plot(tmp_path):
    _need_tools()
    port = _free_port()
    token = "nae-browser-test"
    env = {**os.environ, "NAE_BUDGET": "smoke", "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    lab = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True", "--allow-root",
         f"--ServerApp.root_dir={REPO}"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/lab/tree/notebooks/05_interactive_sampling.ipynb?token={token}"
        p = subprocess.run(["node", str(BROWSER_DIR / "lab_slider.js"), url], capture_output=True, text=True,
                           timeout=1500, cwd=BROWSER_DIR)
        assert p.returncode == 0, p.stdout + p.stderr + (tmp_path / "lab.log").read_text()[-3000:]
        report = json.loads(p.stdout.strip().splitlines()[-1])
        assert report["plot_changed"]
    finally:
        lab.terminate()
        try:
            lab.wait(20)
        except subprocess.TimeoutExpired:
            lab.kill()
