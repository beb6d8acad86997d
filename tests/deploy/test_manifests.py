"""Static checks of the deployment kit: Dockerfile, deploy/compose.yaml, deploy/k8s/.

No Docker engine or cluster needed. Kubernetes objects are validated against the official
JSON schemas bundled by ``kubernetes-validate`` (offline, strict: unknown fields fail);
compose.yaml by targeted assertions. Every RUSHGATE_* variable a manifest sets must be a
real setting of ``rushgate.config.Settings``, so manifests cannot drift from the code.
When ``kubectl`` is installed, ``kubectl kustomize`` must render the same objects as the
reading here (an extra check; the tests never depend on it).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from rushgate.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes the manifests must still fit
APP_PORT = 8000
SERVE = ["rushgate", "serve", "--host", "0.0.0.0", "--port", str(APP_PORT)]
APP_NODES = ("app1", "app2", "app3")
# Exporter service -> (Prometheus job, port). Minimal images without a shell: no
# healthcheck, Prometheus's ``up`` is their health.
EXPORTERS = {
    "nginx-exporter": ("nginx", 9113),
    "postgres-exporter": ("postgres", 9187),
    "postgres-replica-exporter": ("postgres", 9187),
    "redis-exporter": ("redis", 9121),
    "node-exporter": ("node", 9100),
}

# Files this kit owns: scanned for RUSHGATE_* names and for plaintext secrets.
KIT_FILES = (
    DOCKERFILE,
    ROOT / ".dockerignore",
    COMPOSE,
    DEPLOY / "README.md",
    DEPLOY / "compose" / "nginx.conf",
    DEPLOY / "compose" / "postgres" / "primary-init.sh",
    DEPLOY / "prometheus" / "prometheus.yml",
    DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml",
    *sorted(K8S.glob("*.yaml")),
)

SETTINGS_ENV = {f"RUSHGATE_{name.upper()}" for name in Settings.model_fields}
SECRET_SETTINGS = {
    f"RUSHGATE_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
    # URLs of servers carry passwords; the public one is where users reach the site.
    or (name.endswith("_url") and name != "public_url")
}
PLACEHOLDER = re.compile(r"<[^<>]+>")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# --- Kubernetes ----------------------------------------------------------------------------


@cache
def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(K8S / "kustomization.yaml")
    return data


@cache
def rendered() -> tuple[dict[str, Any], ...]:
    """The base's objects as ``kubectl kustomize`` renders them (resources + images only)."""
    known = {"apiVersion", "kind", "resources", "images"}
    assert set(kustomization()) <= known, "a kustomize feature this reading does not model"
    images = {i["name"]: i for i in kustomization().get("images", [])}
    objects: list[dict[str, Any]] = []
    for resource in kustomization()["resources"]:
        for obj in load_all(K8S / resource):
            for container in containers(obj):
                image = images.get(container["image"])
                if image is not None:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
            objects.append(obj)
    return tuple(objects)


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def one(kind: str) -> dict[str, Any]:
    found = [o for o in rendered() if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    result: dict[str, Any] = found[0]
    return result


def app_container() -> dict[str, Any]:
    (container,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}
    assert (K8S / "secret.example.yaml").exists()
    assert {o["kind"] for o in rendered()} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "PersistentVolumeClaim",
    }
    assert all(o["kind"] != "Secret" for o in rendered())


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_every_kubernetes_object_matches_the_official_schema(path: Path) -> None:
    if path.name == "kustomization.yaml":
        return
    objects = load_all(path)
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {obj['kind']}: {exc.message} at {list(exc.path)}")


def test_deployment_probes_resources_and_security() -> None:
    deployment = one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = app_container()
    assert deployment["spec"]["replicas"] == 3
    assert [*container["command"], *container["args"]] == SERVE
    assert container["image"] == "rushgate:" + kustomization()["images"][0]["newTag"]
    (port,) = container["ports"]
    assert port["containerPort"] == APP_PORT

    def probe(name: str) -> tuple[str, Any]:
        get = container[name]["httpGet"]
        assert get["port"] in (port["name"], port["containerPort"]), name
        return get["path"], get["port"]

    assert probe("livenessProbe")[0] == "/healthz"
    assert probe("startupProbe")[0] == "/healthz"
    assert probe("readinessProbe")[0] == "/readyz"

    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    tmp = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp"}
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} >= tmp
    assert len(tmp) == 1
    # Uploads go to one claim every pod shares, never to a pod's own disk.
    env = {e["name"]: e.get("value") for e in container["env"]}
    documents = env["RUSHGATE_DOCUMENTS_DIR"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == documents]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (claim,) = [o for o in rendered() if o["kind"] == "PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]

    # Endpoints drain during the preStop sleep, then uvicorn gets its 30 s of graceful shutdown.
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(sleep[1]) + 30

    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {
        "configMapRef": one("ConfigMap")["metadata"]["name"],
        "secretRef": "rushgate",
    }


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def test_service_hpa_and_pdb_point_at_the_deployment() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)

    service = one("Service")
    assert selects(service["spec"]["selector"], labels)
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in app_container()["ports"]}

    hpa = one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]

    pdb = one("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]

    # The migration Job's pods are not app pods.
    job_labels = one("Job")["spec"]["template"]["metadata"]["labels"]
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert not selects(selector, job_labels)


def test_migration_job_runs_rushgate_migrate_with_the_app_configuration() -> None:
    job = one("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert [*container["command"], *container.get("args", [])] == ["rushgate", "migrate"]
    assert container["image"] == app_container()["image"]
    assert container["envFrom"] == app_container()["envFrom"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_configmap_and_secret_hold_real_settings_and_keep_secrets_apart() -> None:
    config = one("ConfigMap")["data"]
    assert set(config) <= SETTINGS_ENV
    assert not set(config) & SECRET_SETTINGS
    Settings.model_validate({k.removeprefix("RUSHGATE_").lower(): v for k, v in config.items()})

    (secret,) = load_all(K8S / "secret.example.yaml")
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", "rushgate")
    keys = set(secret["stringData"])
    assert keys <= SETTINGS_ENV
    required = {"RUSHGATE_SECRET_KEY", "RUSHGATE_DATABASE_URL", "RUSHGATE_REDIS_URL"}
    assert required <= keys
    assert keys >= SECRET_SETTINGS
    for key, value in secret["stringData"].items():
        assert PLACEHOLDER.search(value), f"{key} in the example must be a <placeholder>"
    for container in containers(one("Deployment")) + containers(one("Job")):
        for env in container.get("env", []):
            assert env["name"] in SETTINGS_ENV
            assert env["name"] not in SECRET_SETTINGS


def test_kubectl_renders_the_same_objects() -> None:
    """An extra check when kubectl is installed; the reading above stands without it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    by_kubectl = [o for o in yaml.safe_load_all(result.stdout) if o]

    def key(o: dict[str, Any]) -> str:
        return json.dumps(o, sort_keys=True)

    assert sorted(map(key, by_kubectl)) == sorted(map(key, rendered()))


# --- Compose -------------------------------------------------------------------------------

SERVICE_KEYS = {
    "build", "command", "depends_on", "entrypoint", "environment", "expose", "healthcheck",
    "image", "init", "networks", "pid", "ports", "read_only", "restart", "stop_grace_period",
    "tmpfs",
    "user",
    "volumes",
}  # fmt: skip


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def test_compose_topology() -> None:
    assert set(compose()) <= {"name", "services", "volumes", "networks"} | {
        k for k in compose() if k.startswith("x-")
    }
    assert set(services()) == {
        "postgres",
        "postgres-replica",
        "redis",
        "migrate",
        *APP_NODES,
        "nginx",
        *EXPORTERS,
        "alertmanager",
        "prometheus",
        "grafana",
    }
    for name, service in services().items():
        assert set(service) <= SERVICE_KEYS, f"{name}: unknown keys {set(service) - SERVICE_KEYS}"
        image = service["image"]
        assert ":" in image, f"{name}: pin the image tag"
        assert not image.endswith(":latest"), f"{name}: pin the image tag"

    for name in (*APP_NODES, "migrate"):
        service = services()[name]
        assert service["build"]["context"] == ".."
        assert (COMPOSE.parent / service["build"]["context"] / "Dockerfile").exists()
    assert services()["migrate"]["command"] == ["rushgate", "migrate"]
    assert services()["migrate"]["restart"] == "no"

    redis = services()["redis"]["command"]
    assert " ".join(redis) == "redis-server --appendonly yes --appendfsync everysec"

    replica = "\n".join(services()["postgres-replica"]["command"])
    assert "pg_basebackup" in replica
    assert " -R" in replica
    assert "-h postgres " in replica

    assert services()["nginx"]["ports"] == ["8080:80"]


def test_compose_app_nodes_wait_for_migrations_and_healthy_dependencies() -> None:
    for name in APP_NODES:
        node = services()[name]
        assert node["command"] == SERVE
        assert node["read_only"] is True
        assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        for dependency in ("postgres", "postgres-replica", "redis"):
            assert node["depends_on"][dependency]["condition"] == "service_healthy"
        check = " ".join(node["healthcheck"]["test"])
        assert f"127.0.0.1:{APP_PORT}/healthz" in check
        # The root is read-only: uploads need the one volume all nodes share, at the
        # documents directory the image creates (and owns, so the volume is writable).
        assert node["volumes"] == ["documents:/var/lib/rushgate/documents"]
    assert "/var/lib/rushgate/documents" in DOCKERFILE.read_text()
    # The nodes believe X-Forwarded-For from nginx only: its fixed address on the subnet.
    address = services()["nginx"]["networks"]["default"]["ipv4_address"]
    (subnet,) = compose()["networks"]["default"]["ipam"]["config"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet["subnet"])
    for name in APP_NODES:
        assert services()[name]["environment"]["RUSHGATE_TRUSTED_PROXIES"] == address
    for name in APP_NODES:
        assert services()["nginx"]["depends_on"][name]["condition"] == "service_healthy"


def test_compose_dependencies_exist_and_healthy_ones_have_healthchecks() -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services().items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services(), f"{name} depends on unknown {target}"
            assert rule["condition"] in conditions
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services()[target], f"{target} has no healthcheck"
        if name != "migrate" and name not in EXPORTERS:
            assert "healthcheck" in service, f"{name} has no healthcheck"


def test_compose_volumes_are_declared_and_bind_mounts_exist() -> None:
    declared = set(compose()["volumes"])
    used = set()
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(("/", "${")):
                continue  # a host path: the machine's root (node exporter), or one given
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared


def test_compose_environment_is_real_settings_and_secrets_come_from_the_environment() -> None:
    required_secret = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")
    for name, service in services().items():
        for key, value in service.get("environment", {}).items():
            if key.startswith("RUSHGATE_"):
                assert key in SETTINGS_ENV, f"{name}: {key} is not a setting"
            value = str(value)
            if re.search(r"PASSWORD|SECRET", key) and not INTERPOLATION.fullmatch(value):
                pytest.fail(f"{name}: {key} must come from the environment")
            credentials = re.match(r"^[a-z]+://([^@/]*)@", value)
            if credentials and ":" in credentials.group(1):
                password = credentials.group(1).split(":", 1)[1]
                assert required_secret.match(password), f"{name}: {key} has a literal password"
    env = services()["app1"]["environment"]
    assert required_secret.match(env["RUSHGATE_SECRET_KEY"])
    assert env["RUSHGATE_DATABASE_URL"].endswith("@postgres:5432/rushgate")
    assert env["RUSHGATE_DATABASE_REPLICA_URL"].endswith("@postgres-replica:5432/rushgate")
    assert env["RUSHGATE_REDIS_URL"] == "redis://redis:6379/0"
    for name in (*APP_NODES, "migrate"):
        assert services()[name]["environment"] == env


def test_nginx_prometheus_and_grafana_point_at_the_compose_services() -> None:
    nginx = (DEPLOY / "compose" / "nginx.conf").read_text()
    upstream = re.findall(r"^\s*server\s+([\w.-]+:\d+)", nginx, re.MULTILINE)
    assert upstream == [f"{node}:{APP_PORT}" for node in APP_NODES]
    assert re.search(r"^\s*listen 80\b", nginx, re.MULTILINE)
    # The outer rate limits and the catalog cache, as in the templated config.
    assert "limit_req_zone $binary_remote_addr zone=rushgate_api" in nginx
    assert "limit_req zone=rushgate_login" in nginx
    assert "proxy_cache rushgate_catalog;" in nginx
    assert "error_page 429 @rate_limited;" in nginx
    assert nginx.count("{") == nginx.count("}")
    assert "/nginx-health" in " ".join(services()["nginx"]["healthcheck"]["test"])

    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "rushgate"]
    assert job["metrics_path"] == "/metrics"
    targets = [t for c in job["static_configs"] for t in c["targets"]]
    assert targets == [f"{node}:{APP_PORT}" for node in APP_NODES]

    grafana = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
    (source,) = load_yaml(grafana)["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in services()["prometheus"]["ports"][0]


def test_prometheus_scrapes_the_compose_exporters_and_they_watch_the_right_servers() -> None:
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    scraped = {
        (job["job_name"], target)
        for job in prometheus["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    # Everything Prometheus scrapes or alerts to is a compose service.
    assert ("alertmanager", "alertmanager:9093") in scraped
    (alerting,) = prometheus["alerting"]["alertmanagers"]
    assert alerting["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert services()["alertmanager"]["expose"] == ["9093"]
    assert (
        "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in (services()["alertmanager"]["volumes"])
    )
    assert services()["prometheus"]["depends_on"] == {
        "alertmanager": {"condition": "service_healthy"}
    }
    for name, (job, port) in EXPORTERS.items():
        assert (job, f"{name}:{port}") in scraped, f"Prometheus does not scrape {name}"
        assert services()[name]["expose"] == [str(port)], name
        assert "ports" not in services()[name], f"{name}: only the compose network needs it"
    roles = {
        config["targets"][0]: config["labels"]["role"]
        for job in prometheus["scrape_configs"]
        if job["job_name"] == "postgres"
        for config in job["static_configs"]
    }
    assert roles == {
        "postgres-exporter:9187": "primary",
        "postgres-replica-exporter:9187": "replica",
    }

    for name, server in (
        ("postgres-exporter", "postgres"),
        ("postgres-replica-exporter", "postgres-replica"),
    ):
        dsn = services()[name]["environment"]["DATA_SOURCE_NAME"]
        assert f"@{server}:5432/rushgate" in dsn, name
        assert services()[name]["depends_on"] == {server: {"condition": "service_healthy"}}
    assert services()["redis-exporter"]["environment"]["REDIS_ADDR"] == "redis://redis:6379"

    # stub_status: a listener of its own on 8081, not published, not the public server's.
    nginx = (DEPLOY / "compose" / "nginx.conf").read_text()
    directives = "\n".join(line.split("#", 1)[0] for line in nginx.splitlines())
    public, _, status = directives.partition("listen 8081;")
    assert "stub_status" not in public
    assert "location = /nginx_status" in status
    assert "deny all;" in status.split("location = /nginx_status", 1)[1].split("}", 1)[0]
    assert services()["nginx"]["ports"] == ["8080:80"]
    command = services()["nginx-exporter"]["command"]
    assert "-nginx.scrape-uri=http://nginx:8081/nginx_status" in command


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    result = []
    for line in lines:
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def test_dockerfile() -> None:
    instructions = dockerfile()
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG")
    stages = [
        a.replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"]) for i, a in instructions if i == "FROM"
    ]
    assert len(stages) >= 2
    assert all(s.startswith("python:3.11-slim") for s in stages)

    runs = " ".join(a for i, a in instructions if i == "RUN")
    assert "pip install --require-hashes --no-deps -r requirements-runtime.lock" in runs
    assert "pip install --no-deps ." in runs

    final = instructions[max(n for n, (i, _) in enumerate(instructions) if i == "FROM") :]
    user = [a for i, a in final if i == "USER"]
    assert user
    assert user[-1].split(":")[0] not in {"root", "0"}
    assert ("EXPOSE", str(APP_PORT)) in final
    (healthcheck,) = [a for i, a in final if i == "HEALTHCHECK"]
    assert f"127.0.0.1:{APP_PORT}/healthz" in healthcheck
    assert "curl" not in healthcheck
    (cmd,) = [a for i, a in final if i == "CMD"]
    assert json.loads(cmd) == SERVE


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: nothing enters the build context by accident"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        source
        for instruction, arguments in dockerfile()
        if instruction == "COPY" and "--from=" not in arguments
        for source in shlex.split(arguments)[:-1]
    }
    assert copied <= allowed
    assert all((ROOT / path).exists() for path in allowed)


# --- Everything ----------------------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert COMPOSE in files
    for path in files:
        assert load_all(path), f"{path} is empty"


def test_every_rushgate_variable_named_in_the_kit_is_a_setting() -> None:
    for path in KIT_FILES:
        assert path.exists(), path
        for name in re.findall(r"\bRUSHGATE_[A-Z0-9_]+\b", path.read_text()):
            if name != "RUSHGATE_IMAGE":  # compose's own variable: which image to run
                assert name in SETTINGS_ENV, f"{path.relative_to(ROOT)}: {name}"


def test_no_plaintext_secrets_in_the_kit() -> None:
    """Passwords and keys are references (${VAR}, $VAR, $(command)), <placeholders> or …."""
    reference = r"\$\{[^}]*\}|\$[A-Z_]+|\$\(.*|<[^>]*>|…"
    fine = re.compile(f"^({reference})$")
    url_password = re.compile(r"\b[a-z][a-z0-9+]*://[^\s:/@'\"]*:([^\s@/'\"]+)@")
    # KEY: value (YAML), KEY=value (shell, .env), KEY = value; not a ${KEY:?…} reference.
    assignment = re.compile(
        r"(?i)(?<!\{)\b[A-Z0-9_]*(?:PASSWORD|SECRET_KEY)(?::|\s*=)\s*['\"]?"
        rf"({reference}|[^\s'\"#]+)"
    )
    for path in KIT_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            for password in url_password.findall(line):
                assert fine.match(password), f"{where}: a password in a URL"
            for value in assignment.findall(line):
                assert fine.match(value), f"{where}: {value!r}"
    assert not re.search(r"BEGIN [A-Z ]*PRIVATE KEY", "".join(p.read_text() for p in KIT_FILES))


def pins(lock: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", lock.read_text(), re.MULTILINE)
    return {name.lower(): version for name, version in found}


def test_the_image_gets_the_tested_versions_without_the_test_tools() -> None:
    full, runtime = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-runtime.lock")
    assert {"fastapi", "asyncpg", "redis", "uvicorn"} <= runtime.keys()
    assert {name: full.get(name) for name in runtime} == runtime
    assert not {"pytest", "mypy", "ruff", "playwright", "hypothesis"} & runtime.keys()
    assert "requirements-runtime.lock" in (ROOT / ".dockerignore").read_text()
