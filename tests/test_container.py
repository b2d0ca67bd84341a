"""What can be checked without a Docker engine: the image's entrypoint command works as written
(the same command, config and environment), and the Kubernetes example parses with probe paths
the daemon serves and a config that validates."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from umig_monitor.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"
MANIFEST = ROOT / "deploy" / "kubernetes" / "sidecar-example.yaml"


def dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().split("\nFROM python")[-1]
    block = re.search(r"ENV (.*?)\n(?!\s)", text, re.S)
    assert block
    pairs = re.findall(r"(\w+)=(\S+)", block.group(1).replace("\\\n", " "))
    return {k: v for k, v in pairs if k.startswith("UMIG_MONITOR_")}


def test_entrypoint_checks_the_bundled_config(tmp_path: Path) -> None:
    assert 'ENTRYPOINT ["umig-monitor"]' in DOCKERFILE.read_text()
    env = {**os.environ, **dockerfile_env(), "UMIG_MONITOR_CONFIG": str(ROOT / "config" / "minimal.yaml")}
    env["UMIG_MONITOR_DAEMON__STORAGE"] = f"sqlite:///{tmp_path}/umig-monitor.db"
    result = subprocess.run(
        [sys.executable, "-m", "umig_monitor", "check-config"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_healthcheck_targets_healthz() -> None:
    text = DOCKERFILE.read_text()
    assert "HEALTHCHECK" in text
    assert "/healthz" in text
    assert "USER umig" in text


def test_kubernetes_manifest() -> None:
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Secret", "Deployment"}
    parse_config(kinds["ConfigMap"]["data"]["umig-monitor.yaml"])
    containers = {c["name"]: c for c in kinds["Deployment"]["spec"]["template"]["spec"]["containers"]}
    sidecar = containers["umig-monitor"]
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    from umig_monitor.app import Daemon
    from umig_monitor.web.server import build_app

    settings = parse_config(kinds["ConfigMap"]["data"]["umig-monitor.yaml"])
    served = {r.resource.canonical for r in build_app(Daemon(settings)).router.routes() if r.resource}
    assert {
        sidecar["livenessProbe"]["httpGet"]["path"],
        sidecar["readinessProbe"]["httpGet"]["path"],
    } <= served
    mounts = {m["mountPath"] for m in sidecar["volumeMounts"]}
    assert "/run/secrets/umig-monitor" in mounts


def test_high_availability_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three replicas, one PostgreSQL from a Secret, member ids from pod names: the config the
    pods would load validates with exactly the environment the manifest gives them."""
    path = ROOT / "deploy" / "kubernetes" / "ha-example.yaml"
    docs = {d["kind"]: d for d in yaml.safe_load_all(path.read_text())}
    assert set(docs) == {"ConfigMap", "Secret", "Deployment", "Service"}
    deployment = docs["Deployment"]["spec"]
    assert deployment["replicas"] == 3
    (container,) = deployment["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["UMIG_MONITOR_DAEMON__CLUSTER__MEMBER_ID"]["value"] == "$(POD_NAME)"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["UMIG_MONITOR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
    # What Kubernetes would hand the process (dependent variables expanded as it does).
    monkeypatch.setenv("UMIG_MONITOR_DATABASE_URL", docs["Secret"]["stringData"]["database-url"])
    monkeypatch.setenv("UMIG_MONITOR_DAEMON__CLUSTER__MEMBER_ID", "umig-monitor-7d9f-abcde")
    monkeypatch.setenv("UMIG_MONITOR_DAEMON__CLUSTER__ADVERTISE_URL", "http://10.0.0.7:9464")
    settings = parse_config(docs["ConfigMap"]["data"]["umig-monitor.yaml"])
    assert settings.daemon.storage.startswith("postgresql://")
    assert settings.daemon.cluster.member_id == "umig-monitor-7d9f-abcde"
    assert str(settings.daemon.cluster.advertise_url) == "http://10.0.0.7:9464/"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
