"""Static checks of the observability kit: Prometheus, Alertmanager, Grafana, runbooks.

``promtool`` (Debian's ``prometheus``) checks the scrape configuration and the rules and
runs the rules' unit tests in ``deploy/prometheus/tests/``; ``amtool`` (Debian's
``prometheus-alertmanager``) checks the Alertmanager configuration and its routing. Both
come from ``scripts/ensure-services prometheus``: without them these tests are skipped
locally and fail in CI. The rest needs no tool: every alert carries a severity, a summary
and a runbook that exists, every alert has a firing and a quiet unit test, every runbook
is linked, the dashboards are Grafana JSON, and every ``rushgate_*`` series the rules and
dashboards read is one the app exports (``EXPORTED_METRICS``). The exporters' series
(``pg_*``, ``redis_*``, ``nginx_*``, ``node_*``) cannot be known without running them:
``exporter_series()`` lists them and ``tests/e2e/test_cluster.py`` checks each against the
real exporters' output in the running stack.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from tests.support import require_service

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
RULES = PROMETHEUS / "rules"
RULE_TESTS = PROMETHEUS / "tests"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
RUNBOOKS = ROOT / "docs" / "runbooks"
COMPOSE = DEPLOY / "compose.yaml"

RUNBOOK_BASE = "https://github.com/OWNER/rushgate/blob/main/"
SEVERITIES = {"warning", "critical"}
SCRAPE_JOBS = {"rushgate", "nginx", "postgres", "redis", "node"}
DATASOURCE_UID = "prometheus"


def _exported_metrics() -> frozenset[str]:
    """The app's series, as scraped, read from its real registry: counters with
    ``_total``, histograms as ``_bucket``, ``_sum`` and ``_count``."""
    import rushgate.observability.metrics  # noqa: F401 - registers every metric

    names: set[str] = set()
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith("# TYPE rushgate_"):
            _, _, name, kind = line.split()
            suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
            names |= {name + suffix for suffix in suffixes}
    return frozenset(names)


EXPORTED_METRICS = _exported_metrics()

# A rushgate_* name that is not part of a recording rule's level:name:operation.
APP_METRIC = re.compile(r"(?<![\w:])(rushgate_[A-Za-z0-9_]+)(?![\w:])")
# The same for the exporters' series, by their prefixes.
EXPORTER_PREFIXES = ("nginx_", "pg_", "redis_", "node_")
EXPORTER_METRIC = re.compile(r"(?<![\w:])((?:nginx|pg|redis|node)_[A-Za-z0-9_]+)(?![\w:])")
# name{matchers}: the selector of one series, and each label matcher in it.
SELECTOR = re.compile(r"(?<![\w:])([A-Za-z_][A-Za-z0-9_]*)\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
# Labels Prometheus adds from the scrape config, not the exporter: nothing to check there.
TARGET_LABELS = {"job", "instance", "role"}
RECORDED = re.compile(r"(?<![\w:])([a-z_]+:[A-Za-z0-9_]+:[A-Za-z0-9_]+)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


# --- the tools ------------------------------------------------------------------------------


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        require_service(name, "not installed (scripts/ensure-services prometheus)")
    assert found is not None
    return found


def run(*args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.yml"))


def test_promtool_checks_the_prometheus_config_and_its_rule_files() -> None:
    output = run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert "SUCCESS" in output


def test_promtool_checks_the_rules() -> None:
    output = run(tool("promtool"), "check", "rules", *map(str, rule_files()))
    assert "FAILED" not in output


def test_promtool_rule_unit_tests_pass() -> None:
    assert rule_test_files()
    run(
        tool("promtool"),
        "test",
        "rules",
        *(p.name for p in rule_test_files()),
        cwd=RULE_TESTS,
    )


def test_amtool_checks_the_alertmanager_config() -> None:
    output = run(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert "SUCCESS" in output


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=InstanceDown"], "slack-critical,discord-critical"),
        (["severity=warning", "alertname=HostOutOfMemory"], "slack-warning"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receivers: str) -> None:
    output = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        *labels,
    )
    assert output.splitlines()[0].strip() == receivers


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each dashboard expression (Grafana's variables filled in)."""
    promtool = tool("promtool")
    rules = [
        {"record": f"dashboard:check:{i}", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run(promtool, "check", "rules", str(path))


def grafana_to_promql(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$(\w+)", ".*", expr)


# --- alerts, runbooks and their tests --------------------------------------------------------


@cache
def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            rules += [rule for rule in group["rules"] if "alert" in rule]
    return rules


@cache
def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in rule_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def alert_names() -> set[str]:
    return {rule["alert"] for rule in alert_rules()}


def runbook_path(url: str) -> Path:
    assert url.startswith(RUNBOOK_BASE), url
    return ROOT / url.removeprefix(RUNBOOK_BASE)


def test_the_expected_alerts_exist() -> None:
    expected = {
        "InstanceDown",
        "HostOutOfMemory",
        "HostMemoryUnderMemoryPressure",
        "HostOutOfDiskSpace",
        "HostHighCpuLoad",
        "RushgateHttpErrorsHigh",
        "RushgateHighLatency",
        "RushgateErrorBudgetBurn",
        "RushgateQueueStuck",
        "RushgateOutboxBacklog",
        "RushgateOutboxStalled",
        "RushgateOutboxDeadLetters",
        "RushgateReplicaLag",
        "SectionOversold",
    }
    assert expected <= alert_names()
    severities = {(r["alert"], r["labels"]["severity"]) for r in alert_rules()}
    assert ("SectionOversold", "critical") in severities


def test_every_alert_has_a_severity_a_summary_and_a_runbook_that_exists() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations.get("summary"), f"{name}: no summary"
        assert annotations.get("description"), f"{name}: no description"
        url = annotations.get("runbook_url", "")
        assert url == f"{RUNBOOK_BASE}docs/runbooks/{kebab(name)}.md", f"{name}: {url}"
        assert runbook_path(url).is_file(), f"{name}: {url} has no page"
        assert f"# {name}" in runbook_path(url).read_text(), f"{name}: page not titled"


def test_an_alert_with_two_rules_has_one_rule_per_severity() -> None:
    seen: dict[str, list[str]] = {}
    for rule in alert_rules():
        seen.setdefault(rule["alert"], []).append(rule["labels"]["severity"])
    for name, severities in seen.items():
        assert len(severities) == len(set(severities)), f"{name}: {severities}"


def alert_rule_tests() -> Iterator[dict[str, Any]]:
    for path in rule_test_files():
        for case in load_yaml(path)["tests"]:
            yield from case.get("alert_rule_test", [])


def test_every_alert_and_severity_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for check in alert_rule_tests():
        expected = check.get("exp_alerts") or []
        if not expected:
            quiet.add(check["alertname"])
        for alert in expected:
            assert alert["exp_annotations"].get("summary"), check["alertname"]
            assert alert["exp_annotations"].get("runbook_url"), check["alertname"]
            firing.add((check["alertname"], alert["exp_labels"]["severity"]))
    for rule in alert_rules():
        key = (rule["alert"], rule["labels"]["severity"])
        assert key in firing, f"no promtool test where {key} fires"
        assert rule["alert"] in quiet, f"no promtool test where {rule['alert']} stays quiet"


def test_every_runbook_page_is_used_and_linked_from_the_index() -> None:
    pages = {p for p in RUNBOOKS.glob("*.md") if p.name != "README.md"}
    used = {runbook_path(r["annotations"]["runbook_url"]) for r in alert_rules()}
    assert pages == used, f"pages without an alert: {pages - used}"
    index = (RUNBOOKS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    assert {p.name for p in pages} <= linked


def test_runbook_links_to_the_operations_doc_point_at_real_sections() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", operations, re.MULTILINE)
    }
    for page in RUNBOOKS.glob("*.md"):
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            path, _, anchor = target.partition("#")
            if path.startswith("http"):
                continue
            assert (page.parent / path).is_file(), f"{page.name}: {target}"
            if path == "../operations.md" and anchor:
                assert anchor in anchors, f"{page.name}: #{anchor} is not a section"


# --- Prometheus config and metric names ----------------------------------------------------


def test_prometheus_scrapes_every_part_and_sends_alerts_to_alertmanager() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) >= SCRAPE_JOBS
    for name in SCRAPE_JOBS:
        targets = [t for c in jobs[name]["static_configs"] for t in c["targets"]]
        assert targets, name
        assert all(re.fullmatch(r"[\w.-]+:\d+", t) for t in targets), name
    assert jobs["rushgate"]["metrics_path"] == "/metrics"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    listed = {(PROMETHEUS / f).resolve() for f in config["rule_files"]}
    assert listed == {p.resolve() for p in rule_files()}
    mounted = load_yaml(COMPOSE)["services"]["prometheus"]["volumes"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in mounted


def test_alerts_read_only_recorded_series_that_exist() -> None:
    for rule in alert_rules():
        for name in RECORDED.findall(rule["expr"]):
            assert name in recorded_names(), f"{rule['alert']}: {name} is not recorded"


def rule_exprs() -> Iterator[tuple[str, str]]:
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"]


def test_rules_and_dashboards_read_only_metrics_the_app_exports() -> None:
    used: dict[str, str] = {}
    for where, expr in [*rule_exprs(), *dashboard_exprs()]:
        for name in APP_METRIC.findall(expr):
            used.setdefault(name, where)
    unknown = {name: where for name, where in used.items() if name not in EXPORTED_METRICS}
    assert not unknown, f"not exported by the app: {unknown}"
    # The kit really reads the app's metrics (the regex is not silently matching nothing).
    assert {"rushgate_http_requests_total", "rushgate_section_enrolled"} <= set(used)


def exporter_series() -> dict[str, str]:
    """Every exporter series the rules and dashboards read: name -> where it is first used."""
    used: dict[str, str] = {}
    for where, expr in [*rule_exprs(), *dashboard_exprs()]:
        for name in EXPORTER_METRIC.findall(expr):
            used.setdefault(name, where)
    return used


def exporter_label_matchers() -> list[tuple[str, str, str, str]]:
    """(where, series, label, value) of every ``label="value"`` or ``label=~"regex"``
    the rules and dashboards put on an exporter series, for labels the exporter itself
    sets (not job, instance, role) and values without a Grafana variable. ``=~`` values
    come back as ``~regex``."""
    found = []
    for where, expr in [*rule_exprs(), *dashboard_exprs()]:
        for name, matchers in SELECTOR.findall(expr):
            if not name.startswith(EXPORTER_PREFIXES):
                continue
            for label, op, value in MATCHER.findall(matchers):
                if label in TARGET_LABELS or "$" in value or op not in ("=", "=~"):
                    continue
                found.append((where, name, label, value if op == "=" else f"~{value}"))
    return found


def test_the_exporter_series_are_found_in_the_rules_and_dashboards() -> None:
    """The regexes really match (the cluster test would otherwise check nothing)."""
    used = exporter_series()
    for name in ("pg_up", "redis_up", "nginx_up", "node_cpu_seconds_total"):
        assert name in used, name
    assert "pg_stat_database_xact_commit" in used
    assert ("pg_stat_database_xact_commit", "datname", "rushgate") in {
        (name, label, value) for _, name, label, value in exporter_label_matchers()
    }
    assert not [name for name in used if name.endswith("_")], used


# --- Grafana -------------------------------------------------------------------------------


@cache
def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                yield f"{name}: {panel['title']}", target["expr"]
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query or "")
            if match:
                yield f"{name}: ${variable['name']}", match.group(1)


def test_dashboards_are_grafana_json_with_queries() -> None:
    titles = {board["title"] for board in dashboards().values()}
    assert titles >= {"Rush overview", "Nodes", "PostgreSQL", "Redis"}
    uids = [board["uid"] for board in dashboards().values()]
    assert len(uids) == len(set(uids))
    for name, board in dashboards().items():
        assert isinstance(board["schemaVersion"], int), name
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels(board):
            assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), f"{name}: {panel['title']}"
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == DATASOURCE_UID, f"{name}: {panel['title']}"
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{name}: {panel['title']}"
                assert target["refId"], f"{name}: {panel['title']}"


def test_the_rush_overview_shows_the_rush() -> None:
    (board,) = [b for b in dashboards().values() if b["title"] == "Rush overview"]
    exprs = " ".join(t["expr"] for p in panels(board) for t in p.get("targets", []))
    for needed in (
        "rushgate_http_requests_total",
        'status=~"5.."',
        "histogram_quantile(0.99",
        "histogram_quantile(0.50",
        "rushgate_queue_waiting",
        "rushgate_queue_admitted_total",
        "rushgate_section_seats_left",
        "topk(",
        "rushgate_outbox_pending",
    ):
        assert needed in exprs, needed


def test_grafana_provisions_the_datasource_and_the_dashboards() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in load_yaml(path)["datasources"]
    ]
    assert [s["uid"] for s in sources] == [DATASOURCE_UID]
    (provider,) = load_yaml(provisioning / "dashboards" / "rushgate.yml")["providers"]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana
