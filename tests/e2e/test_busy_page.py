"""In a real browser: when no node answers, nginx's busy page asks the user to wait, counts
down, and reloads by itself, landing on the site once a node is back. Debian's chromium
driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from rushgate.cluster.nginx import Upstream, render_nginx_conf
from rushgate.cluster.stack import free_port
from tests.support import require_service

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
BACK = "<!doctype html><title>rushgate</title><h1>Registration is open</h1>"


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BACK.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def front_door() -> Iterator[tuple[str, int]]:
    """nginx in front of one node that is not there (yet): its URL and the node's port."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        require_service("nginx", "not installed")
    if not CHROMIUM.exists():
        require_service("chromium", "not installed (sudo ./scripts/ensure-services chromium)")
    prefix = Path(tempfile.mkdtemp(prefix="rushgate-busy-"))
    prefix.chmod(0o755)
    (prefix / "logs").mkdir()
    node_port, port = free_port(), free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            listen_host="127.0.0.1",
            listen_port=port,
            upstreams=[Upstream("127.0.0.1", node_port)],
            prefix=prefix,
        )
    )
    subprocess.run([nginx, "-c", str(conf), "-p", str(prefix)], check=True)
    try:
        yield f"http://127.0.0.1:{port}/", node_port
    finally:
        pid = int((prefix / "nginx.pid").read_text())
        subprocess.run(["kill", f"-{signal.SIGQUIT.value}", str(pid)], check=False)
        shutil.rmtree(prefix, ignore_errors=True)


def test_the_busy_page_waits_and_comes_back_by_itself(front_door: tuple[str, int]) -> None:
    url, node_port = front_door
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            response = page.goto(url)
            assert response is not None
            assert response.status == 502
            assert "very busy" in page.inner_text("h1")
            first = int(page.inner_text("#count"))
            time.sleep(1.5)
            assert int(page.inner_text("#count")) < first  # it counts down, no clicking
            site = ThreadingHTTPServer(("127.0.0.1", node_port), _Site)
            threading.Thread(target=site.serve_forever, daemon=True).start()
            try:
                # The page reloads itself after its countdown (15-25 s) and finds the site.
                page.wait_for_selector("text=Registration is open", timeout=40_000)
                assert page.title() == "rushgate"
            finally:
                site.shutdown()
                site.server_close()
        finally:
            browser.close()
