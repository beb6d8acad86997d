"""Render nginx's configuration for N app nodes from ``deploy/nginx/rushgate.conf.template``.

The template uses ``@@NAME@@`` placeholders, which cannot collide with nginx's own
``$variables``; every placeholder is filled here and the result is a complete ``nginx.conf``
meant to be started as ``nginx -c <file> -p <prefix>`` (daemonized; its pid is written to
``<prefix>/nginx.pid``). ``<prefix>/logs`` must exist before nginx starts.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

TEMPLATE_NAME = "rushgate.conf.template"
# stub_status tells anyone who asks how busy nginx is: it listens on loopback only.
STATUS_HOST = "127.0.0.1"
STATUS_PATH = "/nginx_status"
_PLACEHOLDER = re.compile(r"@@[A-Z_]+@@")
_HOST = re.compile(r"^(\*|[A-Za-z0-9.\-]+|\[?[0-9A-Fa-f:.]+\]?)$")
_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
_USER = re.compile(r"^[A-Za-z0-9_.\-]+( [A-Za-z0-9_.\-]+)?$")


@dataclass(frozen=True)
class Upstream:
    """One app node: ``host:port``, with its share of the traffic in round-robin."""

    host: str
    port: int
    weight: int = 1


@dataclass(frozen=True)
class Tls:
    """A PEM certificate (chain) and its private key, for HTTP/2 over TLS."""

    certificate: Path
    key: Path


class NginxConfigError(ValueError):
    """The arguments cannot make a valid configuration, or the template is missing."""


def template_dir() -> Path:
    """``deploy/nginx`` of the source checkout this package runs from."""
    directory = Path(__file__).resolve().parents[3] / "deploy" / "nginx"
    if not (directory / TEMPLATE_NAME).is_file():
        raise NginxConfigError(
            f"nginx template not found: {directory / TEMPLATE_NAME} "
            "(rushgate cluster runs from a source checkout: pip install -e .)"
        )
    return directory


def render_nginx_conf(
    *,
    listen_host: str,
    listen_port: int,
    upstreams: Sequence[Upstream],
    balance: Literal["round_robin", "least_conn"] = "round_robin",
    prefix: Path,
    errors_dir: Path | None = None,
    tls: Tls | None = None,
    tls_port: int | None = None,
    trusted_proxies: Sequence[str] = ("127.0.0.1",),
    client_max_body_size: str = "1m",
    rate_per_second: int = 200,
    rate_burst: int | None = None,
    login_rate_per_second: int = 50,
    login_burst: int | None = None,
    max_fails: int = 3,
    fail_timeout_seconds: int = 10,
    worker_user: str | None = None,
    status_port: int | None = None,
) -> str:
    """The complete nginx configuration as text.

    ``prefix`` is where nginx writes its pid file, ``logs/`` and temp directories;
    ``errors_dir`` holds the static error pages (default: ``deploy/nginx/errors``).
    ``tls`` adds a listener on ``tls_port`` speaking HTTP/2 (and HTTP/1.1) over TLS.
    ``trusted_proxies`` are the addresses or CIDR ranges whose ``X-Forwarded-For`` is
    believed. ``rate_per_second`` and ``rate_burst`` (default: the rate, at least 10) limit
    each client IP on ``/api/``; ``login_rate_per_second`` and ``login_burst`` (default:
    five seconds' worth, at least 10) limit it further on logging in and signing up.
    ``max_fails=0`` turns off passive health checks.
    ``worker_user``: the ``user`` directive; by default none, except that a root master
    gets ``user root`` when the unprivileged default (``nobody``) could not reach
    ``prefix`` or ``errors_dir`` (e.g. under a 0700 temporary directory).
    ``status_port``: a loopback-only server on ``127.0.0.1:<status_port>`` answering
    ``/nginx_status`` (``stub_status``) for the nginx exporter; without it there is none.
    """
    if not upstreams:
        raise NginxConfigError("at least one upstream is needed")
    if balance not in ("round_robin", "least_conn"):
        raise NginxConfigError(f"unknown balance {balance!r}: round_robin or least_conn")
    if (tls is None) != (tls_port is None):
        raise NginxConfigError("tls and tls_port go together")
    if not _SIZE.match(client_max_body_size):
        raise NginxConfigError(f"client_max_body_size {client_max_body_size!r}: e.g. 1m, 64k")
    if rate_per_second < 1:
        raise NginxConfigError("rate_per_second must be at least 1")
    burst = max(10, rate_per_second) if rate_burst is None else rate_burst
    if burst < 0 or max_fails < 0 or fail_timeout_seconds < 1:
        raise NginxConfigError("rate_burst, max_fails >= 0 and fail_timeout_seconds >= 1")
    if login_rate_per_second < 1:
        raise NginxConfigError("login_rate_per_second must be at least 1")
    login = max(10, 5 * login_rate_per_second) if login_burst is None else login_burst
    if login < 0:
        raise NginxConfigError("login_burst must be >= 0")
    errors = (errors_dir if errors_dir is not None else template_dir() / "errors").resolve()
    prefix = prefix.resolve()

    servers = []
    for up in upstreams:
        if up.weight < 1:
            raise NginxConfigError(f"weight of {up.host}:{up.port} must be at least 1")
        servers.append(
            f"        server {_address(up.host, up.port)} weight={up.weight} "
            f"max_fails={max_fails} fail_timeout={fail_timeout_seconds}s;"
        )

    listen = [f"        listen {_address(listen_host, listen_port)} backlog=4096;"]
    tls_lines = ["        # (no TLS listener: render with tls= and tls_port=)"]
    if tls is not None and tls_port is not None:
        listen.append(f"        listen {_address(listen_host, tls_port)} ssl http2 backlog=4096;")
        tls_lines = [
            f"        ssl_certificate {_quoted(tls.certificate.resolve())};",
            f"        ssl_certificate_key {_quoted(tls.key.resolve())};",
            "        ssl_protocols TLSv1.2 TLSv1.3;",
            "        ssl_prefer_server_ciphers off;",
            "        ssl_session_cache shared:rushgate_tls:10m;",
            "        ssl_session_timeout 1d;",
            "        ssl_session_tickets off;",
        ]

    status_server = ["    # (no status listener: render with status_port=)"]
    if status_port is not None:
        status_server = [
            "    server {",
            f"        listen {_address(STATUS_HOST, status_port)};",
            "        server_name _;",
            "        access_log off;",
            f"        location = {STATUS_PATH} {{",
            "            allow 127.0.0.1;",
            "            allow ::1;",
            "            deny all;",
            "            stub_status;",
            "        }",
            "        location / {",
            "            return 404;",
            "        }",
            "    }",
        ]

    values = {
        "WORKER_USER": _worker_user(worker_user, prefix, errors),
        "PREFIX": _path(prefix),
        "ERRORS_DIR": _path(errors),
        "SET_REAL_IP_FROM": _real_ip_from(trusted_proxies),
        "CLIENT_MAX_BODY_SIZE": client_max_body_size,
        "RATE_PER_SECOND": str(rate_per_second),
        "RATE_BURST": str(burst),
        "LOGIN_RATE_PER_SECOND": str(login_rate_per_second),
        "LOGIN_BURST": str(login),
        "BALANCE": (
            "        least_conn;  # each request to the node with the fewest active ones"
            if balance == "least_conn"
            else "        # weighted round-robin (nginx's default): traffic in the ratio of weights"
        ),
        "SERVERS": "\n".join(servers),
        "LISTEN": "\n".join(listen),
        "TLS": "\n".join(tls_lines),
        "NEXT_UPSTREAM_TRIES": str(min(len(upstreams), 3)),
        "STATUS_SERVER": "\n".join(status_server),
    }
    template = (template_dir() / TEMPLATE_NAME).read_text(encoding="utf-8")
    text = _PLACEHOLDER.sub(lambda m: _lookup(values, m.group(0)[2:-2]), template)
    return text


def _lookup(values: dict[str, str], name: str) -> str:
    try:
        return values[name]
    except KeyError:
        raise NginxConfigError(f"the template uses an unknown placeholder @@{name}@@") from None


def _address(host: str, port: int) -> str:
    if not _HOST.match(host):
        raise NginxConfigError(f"not a host name or address: {host!r}")
    if not 0 < port < 65536:
        raise NginxConfigError(f"not a port: {port}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _path(path: Path) -> str:
    text = str(path)
    if any(c in text for c in '"\\$\n\r') or "@@" in text:
        raise NginxConfigError(f"path not usable in nginx.conf: {text!r}")
    return text


def _quoted(path: Path) -> str:
    return f'"{_path(path)}"'


def _real_ip_from(trusted: Sequence[str]) -> str:
    lines = []
    for item in trusted:
        if not item.startswith("unix:"):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise NginxConfigError(f"trusted proxy {item!r}: an address or CIDR") from None
        elif item != "unix:":
            raise NginxConfigError(f"trusted proxy {item!r}: only the bare 'unix:' is allowed")
        lines.append(f"    set_real_ip_from {item};")
    return "\n".join(lines) or "    # (no trusted proxies: X-Forwarded-For from clients is ignored)"


def _worker_user(worker_user: str | None, prefix: Path, errors: Path) -> str:
    if worker_user is not None:
        if not _USER.match(worker_user):
            raise NginxConfigError(f"not a user (and group): {worker_user!r}")
        return f"user {worker_user};"
    if os.geteuid() != 0:
        return "# (started unprivileged: workers run as the starting user)"
    if _others_can_reach(prefix) and _others_can_read(errors):
        return "# (started as root: workers run as nobody, who can reach prefix and pages)"
    return (
        "# Started as root, and the prefix or the error pages are not reachable by the\n"
        "# default unprivileged worker user (nobody), e.g. under a 0700 temp directory.\n"
        "user root;"
    )


def _others_can_reach(path: Path) -> bool:
    """Whether a stranger may traverse every existing directory down to ``path``."""
    for directory in [path, *path.parents]:
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            continue  # created later, with the usual umask (0755)
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return True


def _others_can_read(directory: Path) -> bool:
    if not _others_can_reach(directory):
        return False
    try:
        files = list(directory.iterdir())
    except OSError:
        return False
    return all(f.stat().st_mode & stat.S_IROTH for f in files if f.is_file())
