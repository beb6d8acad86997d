"""The configs ``rushgate cluster up`` renders for its Prometheus and Alertmanager: valid
for ``promtool``/``amtool``, every node scraped as job ``rushgate`` and every exporter as
the job the rules and dashboards select on, and no webhook that reaches anywhere unless
the operator set one. A missing binary is skipped, not an error. The exporters the
cluster runs are the releases deploy/compose.yaml pins."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rushgate.cluster import stack
from rushgate.cluster.monitoring import (
    UNROUTABLE_WEBHOOK,
    Exporter,
    Target,
    render_prometheus_config,
    write_alertmanager_config,
)
from tests.deploy.test_observability import COMPOSE, RULES, SCRAPE_JOBS, run, tool
from tests.support import require_service

NODES = [Target("node1", 18001), Target("node2", 18002), Target("node3", 18003)]
EXPORTERS = [
    Exporter("nginx", "nginx", 19113),
    Exporter("postgres", "postgres-primary", 19187, "primary"),
    Exporter("postgres", "postgres-replica", 19188, "replica"),
    Exporter("redis", "redis", 19121),
]
# Compose service -> the Debian package the cluster runs instead, at the same release.
COMPOSE_EXPORTERS = {
    "nginx-exporter": "prometheus-nginx-exporter",
    "postgres-exporter": "prometheus-postgres-exporter",
    "postgres-replica-exporter": "prometheus-postgres-exporter",
    "redis-exporter": "prometheus-redis-exporter",
}


def test_the_prometheus_config_scrapes_every_node_and_loads_the_rules(tmp_path: Path) -> None:
    text = render_prometheus_config(
        nodes=NODES,
        prometheus_port=19090,
        alertmanager_port=19093,
        node_exporter_port=19100,
        exporters=EXPORTERS,
    )
    config = json.loads(text)
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert set(jobs) == SCRAPE_JOBS | {"prometheus", "alertmanager"}
    assert [(c["labels"]["instance"], c["targets"]) for c in jobs["rushgate"]] == [
        (n.instance, [f"127.0.0.1:{n.port}"]) for n in NODES
    ]
    assert jobs["nginx"] == [{"targets": ["127.0.0.1:19113"], "labels": {"instance": "nginx"}}]
    assert jobs["redis"] == [{"targets": ["127.0.0.1:19121"], "labels": {"instance": "redis"}}]
    # The role label as in deploy/prometheus/prometheus.yml: the dashboard selects on it.
    assert [(c["targets"], c["labels"]["role"]) for c in jobs["postgres"]] == [
        (["127.0.0.1:19187"], "primary"),
        (["127.0.0.1:19188"], "replica"),
    ]
    assert config["rule_files"] == [str(p) for p in sorted(RULES.glob("*.yml"))]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:19093"
    ]
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    run(tool("promtool"), "check", "config", str(path))


def test_without_alertmanager_or_node_exporter_neither_is_configured() -> None:
    config = json.loads(
        render_prometheus_config(
            nodes=NODES, prometheus_port=19090, alertmanager_port=None, node_exporter_port=None
        )
    )
    assert "alerting" not in config
    assert [job["job_name"] for job in config["scrape_configs"]] == ["rushgate", "prometheus"]


def test_alertmanager_webhooks_point_nowhere_unless_the_operator_set_them(
    tmp_path: Path,
) -> None:
    conf = write_alertmanager_config(tmp_path / "default", {})
    settings = "\n".join(
        line for line in conf.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    assert "discord.com" not in settings
    assert "/etc/alertmanager" not in settings
    assert conf.stat().st_mode & 0o077 == 0
    secrets = sorted((tmp_path / "default" / "secrets").iterdir())
    assert [s.read_text() for s in secrets] == [UNROUTABLE_WEBHOOK] * 2
    run(tool("amtool"), "check-config", str(conf))

    chosen = {
        "RUSHGATE_ALERT_SLACK_CRITICAL_URL": "https://hooks.example.test/critical",
        "RUSHGATE_ALERT_SLACK_WARNING_URL": "https://hooks.example.test/warning",
        "RUSHGATE_ALERT_DISCORD_URL": "https://discord.example.test/api/webhooks/1/t",
    }
    conf = write_alertmanager_config(tmp_path / "chosen", chosen)
    assert 'webhook_url: "https://discord.example.test/api/webhooks/1/t"' in conf.read_text()
    secrets_dir = tmp_path / "chosen" / "secrets"
    assert (secrets_dir / "slack-critical-webhook-url").read_text().endswith("/critical")
    assert (secrets_dir / "slack-warning-webhook-url").read_text().endswith("/warning")


def test_a_missing_monitoring_binary_is_skipped_with_a_progress_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "_binary", lambda _executable: None)
    (tmp_path / "logs").mkdir()
    state = stack.State(str(tmp_path), 1, 2, 3, 4)
    said: list[str] = []
    stack._start_monitoring(state, tmp_path, said.append)
    assert state.monitoring() == []
    assert said == [
        f"skipping {label}: {executable} is not installed"
        " (sudo ./scripts/ensure-services prometheus)"
        for label, executable in stack.MONITORING.values()
    ]
    state.save()
    report = stack.status(tmp_path)
    assert [report[key] for key in stack.MONITORING] == [None] * len(stack.MONITORING)


def test_the_cluster_gives_every_exporter_a_scrape_job() -> None:
    assert set(stack.EXPORTER_TARGETS) <= set(stack.MONITORING)
    jobs = {job for job, _, _ in stack.EXPORTER_TARGETS.values()}
    assert jobs == {"nginx", "postgres", "redis"}
    instances = [instance for _, instance, _ in stack.EXPORTER_TARGETS.values()]
    assert len(instances) == len(set(instances))


def _package_release(package: str) -> str:
    """The upstream release of an installed Debian package: 0.11.0 of 0.11.0-1+b4."""
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        require_service(package, "no dpkg-query: not a Debian system")
        raise AssertionError("unreachable")
    result = subprocess.run(
        [dpkg, "-W", "-f", "${Version}", package],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0 or not result.stdout:
        require_service(package, "not installed (scripts/ensure-services prometheus)")
    version = result.stdout.split(":", 1)[-1]  # no epoch
    return re.split(r"[-+~]", version, maxsplit=1)[0]


@pytest.mark.parametrize("service", sorted(COMPOSE_EXPORTERS))
def test_compose_pins_the_exporter_releases_the_cluster_runs(service: str) -> None:
    """The e2e cluster test checks every exporter series of the dashboards and rules
    against the Debian exporters; that says something about compose's only if it runs
    the same releases."""
    image = yaml.safe_load(COMPOSE.read_text())["services"][service]["image"]
    tag = image.rsplit(":", 1)[1].removeprefix("v")
    assert tag == _package_release(COMPOSE_EXPORTERS[service]), image
