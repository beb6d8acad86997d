"""Prometheus, Alertmanager and the exporters (node, nginx, PostgreSQL, Redis) for
``rushgate cluster``: their configs, rendered from ``deploy/prometheus/`` and
``deploy/alertmanager/`` for loopback ports.

Alertmanager's receivers get harmless webhook URLs (a closed loopback port: notifications
fail and are logged, nothing leaves the machine) unless the operator names real ones in
``RUSHGATE_ALERT_SLACK_CRITICAL_URL``, ``RUSHGATE_ALERT_SLACK_WARNING_URL`` and
``RUSHGATE_ALERT_DISCORD_URL``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The discard port on loopback: nothing listens there, a notification is refused at once.
UNROUTABLE_WEBHOOK = "http://127.0.0.1:9/rushgate-cluster-no-webhook"
SCRAPE_INTERVAL = "5s"
RETENTION = "1d"
# The receivers of deploy/alertmanager/alertmanager.yml: (what the file says, env var).
SLACK_URL_FILE_DIR = "/etc/alertmanager/secrets/"
SLACK_WEBHOOKS = {
    "slack-critical-webhook-url": "RUSHGATE_ALERT_SLACK_CRITICAL_URL",
    "slack-warning-webhook-url": "RUSHGATE_ALERT_SLACK_WARNING_URL",
}
DISCORD_PLACEHOLDER = (
    "https://discord.com/api/webhooks/${DISCORD_WEBHOOK_ID}/${DISCORD_WEBHOOK_TOKEN}"
)
DISCORD_WEBHOOK = "RUSHGATE_ALERT_DISCORD_URL"


class MonitoringConfigError(RuntimeError):
    """deploy/prometheus or deploy/alertmanager is missing or not as expected."""


@dataclass(frozen=True, slots=True)
class Target:
    instance: str
    port: int


@dataclass(frozen=True, slots=True)
class Exporter:
    """One exporter to scrape: ``job`` as the rules and dashboards select on it (``nginx``,
    ``postgres``, ``redis``), ``instance`` the part of the cluster it watches, and for
    PostgreSQL the server's ``role`` (``primary`` or ``replica``, as in
    ``deploy/prometheus/prometheus.yml``)."""

    job: str
    instance: str
    port: int
    role: str | None = None


def deploy_dir() -> Path:
    """``deploy/`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[3] / "deploy"


def rule_files() -> list[Path]:
    rules = sorted((deploy_dir() / "prometheus" / "rules").glob("*.yml"))
    if not rules:
        raise MonitoringConfigError(f"no rules in {deploy_dir() / 'prometheus' / 'rules'}")
    return rules


def _static(port: int, labels: Mapping[str, str] | None = None) -> dict[str, object]:
    config: dict[str, object] = {"targets": [f"127.0.0.1:{port}"]}
    if labels:
        config["labels"] = dict(labels)
    return config


def render_prometheus_config(
    *,
    nodes: Sequence[Target],
    prometheus_port: int,
    alertmanager_port: int | None,
    node_exporter_port: int | None,
    exporters: Sequence[Exporter] = (),
) -> str:
    """Prometheus's config (JSON, which is YAML): every app node as job ``rushgate``
    (``instance`` its node name), node exporter, the ``exporters`` (one job each of
    ``nginx``, ``postgres``, ``redis`` that has any), Alertmanager and Prometheus itself;
    the rules of ``deploy/prometheus/rules/`` by absolute path."""
    scrape: list[dict[str, object]] = [
        {
            "job_name": "rushgate",
            "metrics_path": "/metrics",
            "static_configs": [_static(n.port, {"instance": n.instance}) for n in nodes],
        }
    ]
    if node_exporter_port is not None:
        scrape.append({"job_name": "node", "static_configs": [_static(node_exporter_port)]})
    jobs: dict[str, list[dict[str, object]]] = {}
    for exporter in exporters:
        labels = {"instance": exporter.instance}
        if exporter.role is not None:
            labels["role"] = exporter.role
        jobs.setdefault(exporter.job, []).append(_static(exporter.port, labels))
    scrape += [{"job_name": job, "static_configs": configs} for job, configs in jobs.items()]
    scrape.append({"job_name": "prometheus", "static_configs": [_static(prometheus_port)]})
    config: dict[str, object] = {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"service": "rushgate", "cluster": "local"},
        },
        "rule_files": [str(path) for path in rule_files()],
    }
    if alertmanager_port is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [_static(alertmanager_port)]}]}
        scrape.append({"job_name": "alertmanager", "static_configs": [_static(alertmanager_port)]})
    config["scrape_configs"] = scrape
    return json.dumps(config, indent=2) + "\n"


def write_alertmanager_config(directory: Path, environ: Mapping[str, str]) -> Path:
    """deploy/alertmanager/alertmanager.yml with its webhooks pointed at the operator's
    (from ``environ``) or at nothing; the Slack URL files go to ``directory/secrets``."""
    source = deploy_dir() / "alertmanager" / "alertmanager.yml"
    try:
        text = source.read_text()
    except OSError as exc:
        raise MonitoringConfigError(f"cannot read {source}: {exc}") from exc
    secrets = directory / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    secrets.chmod(0o700)
    for name, variable in SLACK_WEBHOOKS.items():
        if SLACK_URL_FILE_DIR + name not in text:
            raise MonitoringConfigError(f"{source} no longer reads {SLACK_URL_FILE_DIR}{name}")
        secret = secrets / name
        secret.touch(mode=0o600)
        secret.write_text(environ.get(variable) or UNROUTABLE_WEBHOOK)
    if DISCORD_PLACEHOLDER not in text:
        raise MonitoringConfigError(f"{source} no longer has the Discord webhook placeholder")
    text = text.replace(SLACK_URL_FILE_DIR, f"{secrets}/").replace(
        DISCORD_PLACEHOLDER, environ.get(DISCORD_WEBHOOK) or UNROUTABLE_WEBHOOK
    )
    webhooks = ", ".join([*SLACK_WEBHOOKS.values(), DISCORD_WEBHOOK])
    header = (
        f"# Rendered by `rushgate cluster up` from {source}.\n"
        f"# Webhooks: {webhooks} when set, else {UNROUTABLE_WEBHOOK} (nothing is sent).\n"
    )
    conf = directory / "alertmanager.yml"
    conf.touch(mode=0o600)  # it may hold the operator's Discord webhook
    conf.write_text(header + text)
    return conf
