"""The rendered nginx configuration, checked by real nginx in front of real HTTP servers.

Each test starts nginx exactly as ``rushgate cluster`` does (``nginx -c <conf> -p <prefix>``,
daemonized, pid file under the prefix) in front of small stdlib HTTP servers that answer
with their name and record what nginx passed them. nginx is always stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rushgate.cluster.nginx import (
    NginxConfigError,
    Tls,
    Upstream,
    render_nginx_conf,
    template_dir,
)
from tests.serverproc import free_port
from tests.support import require_service

TIMEOUT = 5.0
PROBLEM_JSON = "application/problem+json"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        require_service("nginx", "not installed (scripts/ensure-services nginx)")
        raise AssertionError("unreachable")
    return found


# ---- upstream nodes ----------------------------------------------------------------------


@dataclass
class Node:
    """A stdlib HTTP server on a loopback port. ``drop``: read the request, then hang up
    without answering — a node that dies after the request reached it."""

    name: str
    drop: bool = False
    seen: list[dict[str, Any]] = field(default_factory=list)
    release_stream: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def ids(self, method: str | None = None) -> set[str]:
        return {s["id"] for s in list(self.seen) if method is None or s["method"] == method} - {""}


def _handler(node: Node) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            node.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "id": self.headers.get("X-Test-Id", ""),
                    "xff": self.headers.get("X-Forwarded-For"),
                    "real_ip": self.headers.get("X-Real-IP"),
                    "proto": self.headers.get("X-Forwarded-Proto"),
                    "bytes": len(body),
                }
            )
            if node.drop:
                self.close_connection = True
                return
            if self.path.endswith("/stream"):
                self._stream()
                return
            status, ctype = 200, "application/json"
            payload: dict[str, Any] = {"node": node.name, **node.seen[-1]}
            if self.path.startswith("/api/v1/big"):
                payload["items"] = [f"seat-{i:04d}" for i in range(300)]
            if self.path.startswith("/api/v1/draining"):
                status, ctype = 503, PROBLEM_JSON
                payload = {"status": 503, "code": "draining", "node": node.name}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self) -> None:
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"data: first\n\n")
            self.wfile.flush()
            node.release_stream.wait(TIMEOUT)
            self.wfile.write(b"data: second\n\n")
            self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


@contextmanager
def nodes(*specs: Node) -> Iterator[tuple[Node, ...]]:
    threads = []
    try:
        for node in specs:
            node.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(node))
            node.server.daemon_threads = True
            thread = threading.Thread(target=node.server.serve_forever, daemon=True)
            thread.start()
            threads.append(thread)
        yield specs
    finally:
        for node in specs:
            node.release_stream.set()
            if node.server is not None:
                node.server.shutdown()
                node.server.server_close()
        for thread in threads:
            thread.join(TIMEOUT)


# ---- nginx ---------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _wait(what: str, done: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _connectable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Nginx:
    url: str
    prefix: Path
    tls_url: str | None = None

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=TIMEOUT, trust_env=False, **kwargs)

    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else "(no error.log)"


@contextmanager
def running_nginx(prefix: Path, **render: Any) -> Iterator[Nginx]:
    """Render, ``nginx -t``, start daemonized, and always stop (SIGTERM, then SIGKILL)."""
    binary = nginx_binary()
    (prefix / "logs").mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_nginx_conf(listen_host="127.0.0.1", listen_port=port, prefix=prefix, **render)
    )
    tls_port = render.get("tls_port")
    check = subprocess.run(
        [binary, "-t", "-c", str(conf), "-p", str(prefix)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    pid_file = prefix / "nginx.pid"
    try:
        start = subprocess.run(
            [binary, "-c", str(conf), "-p", str(prefix)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert start.returncode == 0, start.stderr
        _wait("nginx's pid file", pid_file.exists)
        _wait(f"nginx on :{port}", lambda: _connectable(port))
        yield Nginx(
            url=f"http://127.0.0.1:{port}",
            prefix=prefix,
            tls_url=f"https://127.0.0.1:{tls_port}" if tls_port else None,
        )
    finally:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text:
            pid = int(text)
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)
                try:
                    _wait("nginx to stop", lambda: not _alive(pid))
                except AssertionError:
                    os.kill(pid, signal.SIGKILL)
                    raise


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )  # fmt: skip
    return Tls(certificate=cert, key=key)


def _id() -> str:
    return uuid.uuid4().hex


# ---- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["round_robin_332", "least_conn", "tls"])
def test_nginx_accepts_the_rendered_config(variant: str, tmp_path: Path, certificate: Tls) -> None:
    ups = [Upstream("127.0.0.1", 18001, 3), Upstream("127.0.0.1", 18002, 3)]
    ups.append(Upstream("::1", 18003, 2))
    extra: dict[str, Any] = {}
    if variant == "least_conn":
        extra["balance"] = "least_conn"
    if variant == "tls":
        extra.update(tls=certificate, tls_port=18443)
    (tmp_path / "logs").mkdir()
    text = render_nginx_conf(
        listen_host="127.0.0.1", listen_port=18080, upstreams=ups, prefix=tmp_path, **extra
    )
    assert "@@" not in text.replace("@@...@@", "")
    assert "server 127.0.0.1:18001 weight=3 max_fails=3 fail_timeout=10s;" in text
    assert "server [::1]:18003 weight=2" in text
    assert ("least_conn;" in text) == (variant == "least_conn")
    assert ("listen 127.0.0.1:18443 ssl http2" in text) == (variant == "tls")
    directives = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert "proxy_intercept_errors" not in directives
    assert "non_idempotent" not in directives
    assert "proxy_next_upstream error timeout http_502 http_504;" in directives
    # Buffering cannot be told apart from outside on loopback, so check the directives.
    stream = directives.split("location ~ ^/api/v1/queue/[^/]+/stream$ {", 1)[1]
    stream = stream.split("}", 1)[0]
    for wanted in ("proxy_buffering off;", "proxy_read_timeout 1h;", "gzip off;"):
        assert wanted in stream
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = subprocess.run(
        [nginx_binary(), "-t", "-c", str(conf), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_render_refuses_what_nginx_would_misread(tmp_path: Path, certificate: Tls) -> None:
    base: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "listen_port": 8080,
        "upstreams": [Upstream("127.0.0.1", 8001)],
        "prefix": tmp_path,
    }
    bads: list[dict[str, Any]] = [
        {"upstreams": []},
        {"tls": certificate},
        {"tls_port": 8443},
        {"trusted_proxies": ["10.0.0.0/8; evil"]},
        {"client_max_body_size": "1m; evil"},
        {"upstreams": [Upstream("127.0.0.1", 8001, 0)]},
        {"upstreams": [Upstream("bad host", 8001)]},
        {"prefix": tmp_path / "with$dollar"},
    ]
    for bad in bads:
        with pytest.raises(NginxConfigError):
            render_nginx_conf(**{**base, **bad})
    assert (template_dir() / "errors" / "busy.html").is_file()


# ---- behaviour -----------------------------------------------------------------------------


def test_weighted_round_robin_headers_limits_gzip_tls_and_sse(
    tmp_path: Path, certificate: Tls
) -> None:
    tls_port = free_port()
    with (
        nodes(Node("alpha"), Node("beta")) as (alpha, beta),
        running_nginx(
            tmp_path / "nginx",
            upstreams=[Upstream("127.0.0.1", alpha.port, 3), Upstream("127.0.0.1", beta.port, 1)],
            client_max_body_size="64k",
            tls=certificate,
            tls_port=tls_port,
        ) as nginx,
        nginx.client() as client,
    ):
        # Weighted round-robin, shared by all nginx workers: exactly 3:1.
        answers = [client.get("/api/v1/echo") for _ in range(40)]
        assert {r.status_code for r in answers} == {200}
        assert Counter(r.json()["node"] for r in answers) == {"alpha": 30, "beta": 10}

        # The node sees the client's address, once, and the scheme.
        seen = client.get("/api/v1/echo").json()
        assert (seen["real_ip"], seen["xff"], seen["proto"]) == ("127.0.0.1", "127.0.0.1", "http")
        # 127.0.0.1 is a trusted hop here, so the address it forwards is believed.
        seen = client.get("/api/v1/echo", headers={"X-Forwarded-For": "203.0.113.7"}).json()
        assert (seen["real_ip"], seen["xff"]) == ("203.0.113.7", "203.0.113.7")

        # A body over client_max_body_size never reaches a node.
        before = len(alpha.seen) + len(beta.seen)
        big = client.post("/api/v1/echo", content=b"x" * (100 * 1024))
        assert big.status_code == 413
        assert big.headers["content-type"] == PROBLEM_JSON
        assert big.json()["code"] == "payload_too_large"
        assert len(alpha.seen) + len(beta.seen) == before

        # gzip for JSON over 1 KB, only when asked for.
        zipped = client.get("/api/v1/big", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers.get("content-encoding") == "gzip"
        assert len(zipped.json()["items"]) == 300
        plain = client.get("/api/v1/big", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        small = client.get("/api/v1/echo", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in small.headers

        # The app's own 503 problem+json passes through (no proxy_intercept_errors), and
        # is no node failure: a dependency all nodes share is down, not the node. GETs
        # answered 503, more than max_fails per node, are not tried on the other node and
        # leave both in the rotation (listing http_503 took both out: nginx's own 502).
        for _ in range(8):
            unavailable = client.get("/api/v1/draining")
            assert unavailable.status_code == 503
            assert unavailable.headers["content-type"] == PROBLEM_JSON
            assert unavailable.json()["code"] == "draining"
        served = Counter(client.get("/api/v1/echo").json()["node"] for _ in range(8))
        assert served.keys() == {alpha.name, beta.name}, served

        # SSE: the first event arrives while the node still holds the stream open.
        for node in (alpha, beta):
            node.release_stream.clear()
        with client.stream("GET", "/api/v1/queue/t1/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            chunks = stream.iter_text()
            started = time.monotonic()
            first = next(chunks)
            assert "data: first" in first
            assert time.monotonic() - started < 2.0
            assert stream.headers.get("content-encoding") is None
            for node in (alpha, beta):
                node.release_stream.set()
            rest = first + "".join(chunks)
            assert "data: second" in rest

        # HTTP/2 over TLS: ALPN picks h2, and the node learns the scheme was https.
        assert nginx.tls_url is not None
        context = ssl.create_default_context(cafile=str(certificate.certificate))
        context.set_alpn_protocols(["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", tls_port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.selected_alpn_protocol() == "h2"
        verify = ssl.create_default_context(cafile=str(certificate.certificate))
        with httpx.Client(
            base_url=nginx.tls_url, verify=verify, timeout=TIMEOUT, trust_env=False
        ) as https:
            assert https.get("/api/v1/echo").json()["proto"] == "https"


def test_a_node_refusing_connections_is_skipped(tmp_path: Path) -> None:
    dead = free_port()
    with (
        nodes(Node("good")) as (good,),
        running_nginx(
            tmp_path / "nginx",
            upstreams=[Upstream("127.0.0.1", dead), Upstream("127.0.0.1", good.port)],
        ) as nginx,
        nginx.client() as client,
    ):
        for _ in range(6):
            answer = client.get("/api/v1/terms/t1/sections")
            assert answer.status_code == 200
            assert answer.json()["node"] == "good"
        # A refused connection means the POST never left nginx: trying the next node is
        # safe, and nginx does it.
        for _ in range(3):
            answer = client.post("/api/v1/terms/t1/enrollments", json={"section_id": "A"})
            assert answer.status_code == 200
            assert answer.json()["node"] == "good"
        assert "connect() failed" in nginx.error_log()


def test_stub_status_is_served_on_its_own_loopback_listener_only(tmp_path: Path) -> None:
    status_port = free_port()
    with (
        nodes(Node("app")) as (app,),
        running_nginx(
            tmp_path / "nginx",
            upstreams=[Upstream("127.0.0.1", app.port)],
            status_port=status_port,
        ) as nginx,
        nginx.client() as client,
    ):
        status = httpx.get(f"http://127.0.0.1:{status_port}/nginx_status", timeout=TIMEOUT)
        assert status.status_code == 200
        assert status.text.startswith("Active connections:")
        other = httpx.get(f"http://127.0.0.1:{status_port}/", timeout=TIMEOUT)
        assert other.status_code == 404
        # The public listener knows nothing of it: the path goes to the app like any other.
        public = client.get("/nginx_status")
        assert "Active connections" not in public.text
        assert public.json()["node"] == "app"
    conf = (tmp_path / "nginx" / "nginx.conf").read_text()
    assert f"listen 127.0.0.1:{status_port};" in conf
    assert "deny all;" in conf.split("location = /nginx_status", 1)[1].split("}", 1)[0]


def test_without_a_status_port_there_is_no_stub_status(tmp_path: Path) -> None:
    text = render_nginx_conf(
        listen_host="127.0.0.1",
        listen_port=18080,
        upstreams=[Upstream("127.0.0.1", 18001)],
        prefix=tmp_path,
    )
    directives = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert "stub_status" not in directives


def test_a_post_the_node_received_is_never_sent_to_another(tmp_path: Path) -> None:
    # max_fails=0: the dropping node is never taken out, so it keeps getting its turn.
    with (
        nodes(Node("dropper", drop=True), Node("good")) as (dropper, good),
        running_nginx(
            tmp_path / "nginx",
            upstreams=[Upstream("127.0.0.1", dropper.port), Upstream("127.0.0.1", good.port)],
            max_fails=0,
        ) as nginx,
        nginx.client() as client,
    ):

        def post_until_502(accept: str) -> httpx.Response:
            for _ in range(4):
                answer = client.post(
                    "/api/v1/terms/t1/enrollments",
                    json={"section_id": "A"},
                    headers={"Accept": accept, "X-Test-Id": _id()},
                )
                if answer.status_code == 502:
                    return answer
                assert answer.status_code == 200
            raise AssertionError("the dropping node never got a POST")

        api = post_until_502("application/json")
        assert api.headers["content-type"] == PROBLEM_JSON
        assert api.headers["retry-after"] == "20"
        assert api.json()["code"] == "upstream_unavailable"
        assert api.json()["status"] == 502

        browser = post_until_502("text/html,application/xhtml+xml,*/*;q=0.8")
        assert browser.headers["content-type"].startswith("text/html")
        assert browser.headers["retry-after"] == "20"
        assert "do not press refresh" in browser.text
        assert 'http-equiv="refresh"' in browser.text

        # Every POST the dropper took was answered 502, never replayed on the good node.
        dropped = dropper.ids("POST")
        assert len(dropped) == 2
        assert not dropped & good.ids("POST")

        # A GET the dropper took is retried on the good node: the user sees 200.
        for _ in range(4):
            answer = client.get("/api/v1/terms/t1/sections", headers={"X-Test-Id": _id()})
            assert answer.status_code == 200
            assert answer.json()["node"] == "good"
        retried = dropper.ids("GET") & good.ids("GET")
        assert retried

        # Not an API path and no JSON wanted: the busy page.
        for _ in range(2):
            page = client.post("/apply", content=b"x", headers={"Accept": "*/*"})
            if page.status_code == 502:
                assert page.headers["content-type"].startswith("text/html")
                break
        else:
            raise AssertionError("the dropping node never got a POST")


def test_untrusted_forwarded_for_is_ignored_and_api_is_rate_limited(tmp_path: Path) -> None:
    with (
        nodes(Node("only")) as (only,),
        running_nginx(
            tmp_path / "nginx",
            upstreams=[Upstream("127.0.0.1", only.port)],
            trusted_proxies=(),
            rate_per_second=1,
            rate_burst=3,
        ) as nginx,
        nginx.client() as client,
    ):
        seen = client.get("/api/v1/echo", headers={"X-Forwarded-For": "203.0.113.7"}).json()
        assert (seen["real_ip"], seen["xff"]) == ("127.0.0.1", "127.0.0.1")

        answers = [client.get("/api/v1/echo") for _ in range(20)]
        codes = Counter(a.status_code for a in answers)
        assert codes[429] >= 14
        assert codes[200] <= 5
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.headers["content-type"] == PROBLEM_JSON
        assert limited.json()["code"] == "rate_limited"
        assert limited.headers["retry-after"] == "1"

        # Health checks are never limited.
        assert {client.get("/healthz").status_code for _ in range(20)} == {200}


def test_logins_and_sign_ups_have_a_tighter_limit_of_their_own(tmp_path: Path) -> None:
    with (
        nodes(Node("only")) as (only,),
        running_nginx(
            tmp_path / "nginx",
            upstreams=[Upstream("127.0.0.1", only.port)],
            rate_per_second=1000,
            login_rate_per_second=1,
            login_burst=4,
        ) as nginx,
        nginx.client() as client,
    ):
        logins = [client.post("/api/v1/auth/token", json={}) for _ in range(12)]
        codes = Counter(a.status_code for a in logins)
        assert codes[200] <= 6  # the burst of 4, plus what refilled meanwhile (1/s)
        assert codes[429] >= 6
        limited = next(a for a in logins if a.status_code == 429)
        assert limited.headers["content-type"] == PROBLEM_JSON
        assert limited.json()["code"] == "rate_limited"
        assert limited.headers["retry-after"] == "1"
        # One zone for every way in: sign-ups and browser sessions share the budget.
        assert client.post("/api/v1/applicants", json={}).status_code == 429
        assert client.post("/api/v1/auth/session", json={}).status_code == 429
        # The rest of the API has its own, larger budget; and the login location still
        # passes the client's address on.
        echo = client.get("/api/v1/echo")
        assert echo.status_code == 200
        assert (echo.json()["real_ip"], echo.json()["xff"]) == ("127.0.0.1", "127.0.0.1")
        assert {s["real_ip"] for s in only.seen if s["path"] == "/api/v1/auth/token"} == {
            "127.0.0.1"
        }
        # Neighbouring paths are not logins.
        assert client.post("/api/v1/applicants/verify", json={}).status_code == 200


def test_render_refuses_a_login_rate_nginx_cannot_use(tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "listen_port": 18080,
        "upstreams": [Upstream("127.0.0.1", 18001)],
        "prefix": tmp_path,
    }
    with pytest.raises(NginxConfigError, match="login_rate_per_second"):
        render_nginx_conf(**common, login_rate_per_second=0)
    with pytest.raises(NginxConfigError, match="login_burst"):
        render_nginx_conf(**common, login_burst=-1)
    text = render_nginx_conf(**common, login_rate_per_second=7)
    assert "zone=rushgate_login:10m rate=7r/s" in text
    assert "zone=rushgate_login burst=35 nodelay" in text  # five seconds' worth
