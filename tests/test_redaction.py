"""Secrets are a type: a distinct secret is planted in every secret-bearing field of the config
model (found by walking the model, so a new secret field cannot be missed), and none of them
appears in any API response, the status page, /metrics, the daemon's log (failing polls, failing
deliveries, a failed reload) or check-config's output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from tests.support import POSTGRES_URL, free_port, scratch_database, until
from umig_monitor.config import Settings, load_config
from umig_monitor.config.secrets import field_secret_markers
from umig_monitor.simulator import RunningSimulator

pytestmark = pytest.mark.slow


def models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in models_in(arg)]


def secret_fields(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """``Class.field`` for every secret-bearing field reachable from ``model``."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    found = set()
    for name, info in model.model_fields.items():
        if field_secret_markers(info):
            found.add(f"{model.__name__}.{name}")
        for sub in models_in(info.annotation):
            found |= secret_fields(sub, seen)
    return found


def planted_fields(settings: Settings) -> set[str]:
    """``Class.field`` for every secret-bearing field that holds a value in ``settings``."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, BaseModel):
            for name, info in type(node).model_fields.items():
                value = getattr(node, name)
                if field_secret_markers(info) and value not in (None, {}, ""):
                    found.add(f"{type(node).__name__}.{name}")
                walk(value)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk(settings)
    return found


NAMES = "api basic bearer userinfo query mail hook hookq header slack push external advertise storage"
NAMES += " forward fwheader"
SECRETS = {name: f"pl4nt3d{n:02d}x" for n, name in enumerate(NAMES.split())}


def planted_config(sim: RunningSimulator, port: int, storage: str) -> str:
    s = SECRETS
    dead = "127.0.0.1:9"  # refused: every delivery fails and is logged
    userinfo = f"http://dev:{s['userinfo']}@"
    dev_url = sim.base_url("development").replace("http://", userinfo) + f"?t={s['query']}"
    return textwrap.dedent(f"""\
        daemon:
          listen: 127.0.0.1:{port}
          storage: {storage}
          api_token: {s["api"]}
          external_url: https://ops:{s["external"]}@status.example.invalid/?k={s["external"]}
          shutdown_timeout: 3s
          log_format: json
          cluster:
            advertise_url: http://member:{s["advertise"]}@127.0.0.1:{port}/
        environments:
          production:
            base_url: {sim.base_url("production")}
            kind: production
            poll_interval: 500ms
            auth: {{type: basic, username: ops, password: {s["basic"]}}}
          uat:
            base_url: {sim.base_url("uat")}
            kind: uat
            poll_interval: 500ms
            auth: {{type: bearer, token: {s["bearer"]}}}
          development:
            base_url: {dev_url}
            kind: development
            poll_interval: 500ms
        sinks:
          mail: {{type: mail, host: 127.0.0.1, port: 9, username: ops, password: {s["mail"]},
                 from: m@example.invalid, to: [o@example.invalid]}}
          hook: {{type: webhook, url: "http://u:{s["hook"]}@{dead}/hook?token={s["hookq"]}",
                 headers: {{Authorization: "Bearer {s["header"]}"}}}}
          slack: {{type: slack, webhook_url: "http://{dead}/services/{s["slack"]}"}}
        default_route:
          sinks: [mail, hook, slack]
        deployments:
          forward_url: "http://fw:{s["forward"]}@{dead}/events"
          forward_headers: {{X-Api-Key: "{s["fwheader"]}"}}
        pushgateway:
          url: http://push:{s["push"]}@{dead}/
          interval: 1s
        """)


def assert_clean(where: str, text: str) -> None:
    leaked = sorted(name for name, secret in SECRETS.items() if secret in text)
    assert not leaked, f"{where} shows the secrets of: {leaked}"


def fetch(url: str, token: str | None = None, body: object = None) -> str:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
    except OSError:  # not listening yet
        return ""


async def logged(log: Path, *needles: str, within: float = 30) -> None:
    """Wait until every needle is in the log (each fact separately, with a loaded machine's margin)."""

    async def has(needle: str) -> bool:
        return needle in await asyncio.to_thread(log.read_text)

    for needle in needles:
        await until(lambda n=needle: has(n), within=within, what=f"{needle} logged")


GET_PATHS = [
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/config",
    "/api/v1/environments",
    "/api/v1/environments/production",
    "/api/v1/environments/development",
    "/api/v1/cluster",
    "/api/v1/alerts",
    "/api/v1/silences",
    "/api/v1/outbox",
    "/api/v1/deployments",
    "/api/v1/dora",
    "/api/v1/drift",
    "/api/v1/baselines",
]


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL for a storage URL with a password")
async def test_no_planted_secret_is_ever_shown(simulator: RunningSimulator, tmp_path: Path) -> None:
    async with scratch_database("postgresql", tmp_path / "unused.db") as url:
        # The throwaway server trusts loopback, so any password is accepted: plant one.
        storage = url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRETS['storage']}@")
        port = free_port()
        config = tmp_path / "umig-monitor.yaml"
        config.write_text(planted_config(simulator, port, storage))
        settings = load_config(config)
        missing = secret_fields(Settings) - planted_fields(settings)
        assert not missing, f"plant a secret in these fields too: {sorted(missing)}"

        # check-config on the good file and on a broken one that still carries every secret.
        for text in (config.read_text(), config.read_text() + "bogus_section: {a: 1}\n"):
            probe = tmp_path / "probe.yaml"
            probe.write_text(text)
            checked = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "umig_monitor", "check-config", "--config", str(probe)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert_clean("check-config", checked.stdout + checked.stderr)

        log = tmp_path / "daemon.log"
        with log.open("w") as out:
            proc = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-m", "umig_monitor", "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ},
            )
        base = f"http://127.0.0.1:{port}"
        try:

            async def ready_or_exited() -> bool:
                return proc.poll() is not None or '"ready": true' in await asyncio.to_thread(
                    fetch, base + "/readyz"
                )

            await until(ready_or_exited, within=30, what="ready")
            assert proc.poll() is None, log.read_text()
            # Polls that fail (a broken body, a refused query URL) and deliveries that fail.
            control = simulator.control_url("/environments/uat/faults")
            await asyncio.to_thread(fetch, control, None, {"kind": "malformed_json", "count": 5})
            created = await asyncio.to_thread(
                fetch,
                base + "/api/v1/alerts",
                SECRETS["api"],
                {"type": "manual", "environment": "production", "severity": "critical", "message": "x"},
            )
            assert "alert" in created, created + log.read_text()[-3000:]
            await logged(log, '"sink_send_failed"', '"sink": "mail"', '"sink": "hook"', '"sink": "slack"')
            await logged(log, '"job": "pushgateway"', '"invalid_response"')
            # A reload that fails, with every secret in the rejected file.
            config.write_text(config.read_text() + "bogus_section: {a: 1}\n")
            proc.send_signal(signal.SIGHUP)
            await logged(log, "config_reload_failed")
            for path in GET_PATHS:
                assert_clean(path, await asyncio.to_thread(fetch, base + path))
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 15)
        text = log.read_text()
        assert "probe_completed" in text
        assert_clean("the log", text)
