"""The configs ``rushgate cluster up`` renders for its Prometheus and Alertmanager: valid
for ``promtool``/``amtool``, every node scraped as job ``rushgate``, and no webhook that
reaches anywhere unless the operator set one. A missing binary is skipped, not an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rushgate.cluster import stack
from rushgate.cluster.monitoring import (
    UNROUTABLE_WEBHOOK,
    Target,
    render_prometheus_config,
    write_alertmanager_config,
)
from tests.deploy.test_observability import RULES, run, tool

NODES = [Target("node1", 18001), Target("node2", 18002), Target("node3", 18003)]


def test_the_prometheus_config_scrapes_every_node_and_loads_the_rules(tmp_path: Path) -> None:
    text = render_prometheus_config(
        nodes=NODES, prometheus_port=19090, alertmanager_port=19093, node_exporter_port=19100
    )
    config = json.loads(text)
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert set(jobs) == {"rushgate", "node", "prometheus", "alertmanager"}
    assert [(c["labels"]["instance"], c["targets"]) for c in jobs["rushgate"]] == [
        (n.instance, [f"127.0.0.1:{n.port}"]) for n in NODES
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
    assert [report[key] for key in stack.MONITORING] == [None, None, None]
