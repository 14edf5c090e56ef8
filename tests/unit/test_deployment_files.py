"""The deployment files: docker-compose.yml (by `docker compose config` when the plugin is there,
and by its structure always), the Dockerfile it builds, and the Procfile."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
FLOWER_ENV = {"FLOWER_BASIC_AUTH": "ops:a-long-password", "FLOWER_COOKIE_SECRET": "a-long-random-string"}


def _compose_plugin() -> bool:
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _compose_config(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    # --env-file /dev/null: a developer's own .env must not make the check pass or fail.
    return subprocess.run(["docker", "compose", "--env-file", os.devnull, "-f", str(COMPOSE), "config", "--quiet"],
                          cwd=ROOT, env={**env, **extra_env}, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


@pytest.mark.skipif(not _compose_plugin(), reason="the docker compose plugin is not installed: `docker compose config` cannot run")
def test_docker_compose_config_accepts_the_file_and_requires_flower_credentials():
    # Given the Flower credentials, When docker compose checks the file, Then it is valid
    ok = _compose_config(FLOWER_ENV)
    assert ok.returncode == 0, ok.stderr
    # Given none, Then it refuses, naming the missing variable
    missing = _compose_config({})
    assert missing.returncode != 0
    assert "FLOWER_BASIC_AUTH" in missing.stderr


def test_compose_has_redis_worker_beat_and_flower_from_one_image(compose):
    # Given the compose file, Then the four services are there, the three app ones built here
    services = {name: svc for name, svc in compose["services"].items() if "profiles" not in svc}
    assert set(services) == {"redis", "worker", "beat", "flower"}
    for name in ("worker", "beat", "flower"):
        assert services[name]["build"] == "."
        assert _command(services[name])[:3] == ["celery", "-A", "workers"]
        assert services[name]["environment"]["WEBHOOKS_REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert (ROOT / "Dockerfile").is_file()


def test_compose_redis_persists_never_evicts_and_is_not_published(compose):
    redis = compose["services"]["redis"]
    # Then it runs our redis.conf, mounted read-only, with its data in a named volume
    assert "./config/redis.conf:/usr/local/etc/redis/redis.conf:ro" in redis["volumes"]
    assert _command(redis)[:2] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    assert any(v.split(":")[0] in compose["volumes"] and v.endswith(":/data") for v in redis["volumes"])
    conf = (ROOT / "config" / "redis.conf").read_text()
    assert re.search(r"^appendonly yes$", conf, re.M) and re.search(r"^maxmemory-policy noeviction$", conf, re.M)
    # ... its image is Redis 6.2 or newer (Celery 5.7), and no port of it reaches the host
    major, minor = (int(x) for x in re.match(r"redis:(\d+)\.(\d+)", redis["image"]).groups())  # type: ignore[union-attr]
    assert (major, minor) >= (6, 2)
    assert "ports" not in redis
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]


def test_compose_flower_requires_auth_and_is_published_on_loopback_only(compose):
    flower = compose["services"]["flower"]
    env = flower["environment"]
    # Then the credentials are required at `docker compose` time (${VAR:?message})
    assert env["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert env["FLOWER_COOKIE_SECRET"].startswith("${FLOWER_COOKIE_SECRET:?")
    assert "--conf=config/flowerconfig.py" in _command(flower)
    # ... and the host sees Flower on 127.0.0.1 only
    assert flower["ports"] and all(str(p).startswith("127.0.0.1:") for p in flower["ports"])
    # ... the worker sends the task events Flower shows; one beat only
    assert compose["x-app"]["environment"]["WEBHOOKS_WORKER_EVENTS"] == "1"
    assert "deploy" not in compose["services"]["beat"]


def test_dockerfile_is_python_311_slim_installs_the_project_and_copies_what_exists():
    text = (ROOT / "Dockerfile").read_text()
    # Then it builds FROM python:3.11-slim, runs `pip install .`, and not as root
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    assert re.search(r"^USER (?!root)\S+$", text, re.M)
    # ... and everything it copies is in the repository and not excluded by .dockerignore
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert source not in ignored, source


def test_procfile_runs_worker_beat_and_flower_with_our_config():
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))
    # Then there is one line per process, each the Celery app of this project
    assert set(lines) == {"worker", "beat", "flower"}
    assert lines["worker"].split() == ["celery", "-A", "workers", "worker", "-l", "INFO"]
    assert lines["beat"].split()[:4] == ["celery", "-A", "workers", "beat"]
    assert lines["flower"].split() == ["celery", "-A", "workers", "flower", "--conf=config/flowerconfig.py"]


WORKER_COMMAND = ["celery", "-A", "workers", "worker", "-l", "INFO"]


def test_every_place_that_starts_a_worker_runs_the_same_bare_command(compose):
    # Given the README, Makefile, Procfile, compose file and Dockerfile, Then each starts the worker
    # with the bare command (queues, pool, concurrency and task events come from workers/config.py)
    assert _command(compose["services"]["worker"]) == WORKER_COMMAND
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                    if line.strip() and not line.startswith("#"))
    assert procfile["worker"].split() == WORKER_COMMAND
    assert re.search(r"^\t\$\(VENV\)/bin/celery -A workers worker -l INFO$", (ROOT / "Makefile").read_text(), re.M)
    assert re.search(r'^CMD \["celery", "-A", "workers", "worker", "-l", "INFO"\]$', (ROOT / "Dockerfile").read_text(), re.M)
    assert "celery -A workers worker -l INFO" in (ROOT / "README.md").read_text()
    for text in ((ROOT / p).read_text() for p in ("Makefile", "Procfile", "Dockerfile", "docker-compose.yml")):
        assert "-P threads" not in text and "-Q deliveries" not in text and '"-E"' not in text
    assert "celery -A workers worker -P" not in (ROOT / "README.md").read_text()


def test_compose_checks_worker_and_beat_liveness(compose):
    # Then the worker and beat services are checked by the liveness probe that fails when stuck
    for name in ("worker", "beat"):
        test = compose["services"][name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "webhooks.liveness", name]
    # ... and Flower (same image, whose HEALTHCHECK is the worker's) has its own
    assert "/healthcheck" in " ".join(compose["services"]["flower"]["healthcheck"]["test"])
    assert 'HEALTHCHECK' in (ROOT / "Dockerfile").read_text()
def test_compose_monitoring_profile_runs_prometheus_grafana_and_one_exporter(compose):
    services = compose["services"]
    # Given the monitoring profile, Then it holds Prometheus, Grafana and the one Redis-gauge exporter
    monitoring = {name for name, svc in services.items() if "monitoring" in svc.get("profiles", [])}
    assert monitoring == {"prometheus", "grafana", "metrics"}
    assert _command(services["metrics"])[:2] == ["webhooks", "metrics"]
    assert services["metrics"]["build"] == "." and "deploy" not in services["metrics"]
    # ... Prometheus runs our prometheus.yml, whose targets are the workers' and the exporter's ports
    prom = services["prometheus"]
    assert "./config/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    yaml = pytest.importorskip("yaml")
    conf = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in conf["scrape_configs"]}
    workers = jobs["chat-webhooks-workers"]["dns_sd_configs"][0]
    app_env = services["worker"]["environment"]
    assert workers["names"] == ["worker"] and str(workers["port"]) == app_env["WEBHOOKS_METRICS_PORT"]
    assert app_env["WEBHOOKS_METRICS_ADDRESS"] == "0.0.0.0"
    port = _command(services["metrics"])[_command(services["metrics"]).index("--port") + 1]
    assert jobs["chat-webhooks-exporter"]["static_configs"][0]["targets"] == [f"metrics:{port}"]
    # ... Grafana is provisioned with the datasource and the dashboard file
    grafana = services["grafana"]
    assert "./config/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    mounted = [v for v in grafana["volumes"] if v.startswith("./config/grafana/chat-webhooks.json:")]
    assert mounted and (ROOT / "config" / "grafana" / "chat-webhooks.json").is_file()
    providers = yaml.safe_load((ROOT / "config/grafana/provisioning/dashboards/chat-webhooks.yml").read_text())["providers"]
    assert mounted[0].split(":")[1].startswith(providers[0]["options"]["path"] + "/")
    datasources = yaml.safe_load((ROOT / "config/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert datasources[0]["url"] == "http://prometheus:9090" and datasources[0]["type"] == "prometheus"
    # ... and the host sees Grafana and Prometheus on loopback only; worker metrics are not published
    for name in ("prometheus", "grafana"):
        assert services[name]["ports"] and all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"])
    assert "ports" not in services["worker"] and "ports" not in services["metrics"]


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian package prometheus) is not installed")
def test_prometheus_config_is_accepted_by_promtool():
    done = subprocess.run(["promtool", "check", "config", str(ROOT / "config" / "prometheus" / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
