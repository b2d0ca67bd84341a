"""The whole product, end to end: the real daemon process against the simulator, with real
receivers on loopback (aiosmtpd, a webhook receiver, a Slack-like receiver that sometimes answers
429, prometheus-pushgateway and prometheus-alertmanager), driven through the story ops live."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from tests.support import Mailbox, Receiver, Slack, external_process, free_port, require_tool, serving, until
from umig_monitor.simulator import RunningSimulator

pytestmark = pytest.mark.slow


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "umig_monitor", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Mailbox, int, Receiver, Slack, str]]:
    mailbox = Mailbox()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    hook, slack = Receiver(), Slack()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    app.router.add_post("/slack", slack.handle)
    try:
        async with serving(app) as base:
            hook.url = f"{base}/hook"
            yield mailbox, smtp_port, hook, slack, f"{base}/slack"
    finally:
        controller.stop()


def config_text(
    sim: RunningSimulator,
    tmp: Path,
    listen: int,
    smtp: int,
    hook: str,
    slack: str,
    gateway: str,
    alertmanager: str,
    envs: tuple[str, ...],
) -> str:
    environments = "".join(
        f"  {e}:\n    base_url: {sim.base_url(e)}\n    kind: {e}\n    poll_interval: 500ms\n    timeout: 2s\n"
        for e in envs
    )
    return f"""
daemon:
  listen: 127.0.0.1:{listen}
  storage: sqlite:///{tmp}/umig-monitor.db
  api_token: e2e-token
  shutdown_timeout: 3s
environments:
{environments}
jobs:
  health: {{failure_threshold: 2, success_threshold: 2}}
  drift: {{interval: 1s}}
  baseline: {{enabled: false}}
  daily_report: {{route: ops-daily, directory: {tmp}/reports}}
sinks:
  mail: {{type: mail, host: 127.0.0.1, port: {smtp}, from: umig-monitor@example.com, to: [ops@example.com]}}
  slack: {{type: slack, webhook_url: '{slack}', rate_limit_per_second: 10}}
  hook: {{type: webhook, url: '{hook}', retry: {{initial_backoff: 200ms, max_backoff: 1s}}}}
  am: {{type: webhook, url: '{alertmanager}', format: alertmanager}}
routes:
  - match: {{severity: critical}}
    sinks: [mail, slack, am]
  - match_re: {{type: 'deployment_.*|rollback'}}
    sinks: [slack]
  - match: {{type: version_drift}}
    sinks: [hook]
  - name: ops-daily
    match: {{type: daily_report}}
    sinks: [mail]
default_route: {{sinks: []}}
pushgateway: {{url: '{gateway}', job: umig-deployment-tracking, interval: 1s}}
"""


def start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "umig_monitor", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


async def test_story(
    simulator: RunningSimulator, tmp_path: Path, receivers: tuple[Mailbox, int, Receiver, Slack, str]
) -> None:
    mailbox, smtp_port, hook, slack, slack_url = receivers
    gw_port, am_port, listen = free_port(), free_port(), free_port()
    gateway, alertmanager, base = (
        f"http://127.0.0.1:{gw_port}",
        f"http://127.0.0.1:{am_port}",
        f"http://127.0.0.1:{listen}",
    )
    am_config = tmp_path / "am.yml"
    am_config.write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    config = tmp_path / "umig-monitor.yaml"
    envs = ("development", "uat", "production")

    def write(environments: tuple[str, ...]) -> None:
        config.write_text(
            config_text(
                simulator,
                tmp_path,
                listen,
                smtp_port,
                hook.url,
                slack_url,
                gateway,
                alertmanager,
                environments,
            )
        )

    write(envs)
    async with (
        external_process(
            [require_tool("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{gw_port}"],
            gateway + "/-/ready",
        ),
        external_process(
            [
                require_tool("prometheus-alertmanager"),
                f"--config.file={am_config}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            alertmanager + "/-/ready",
        ),
    ):
        daemon = start(config)
        try:
            # 1. Steady state: the guide's versions, all healthy, nothing sent.
            await until(lambda: _ready(base), what="readyz")
            status = await asyncio.to_thread(cli, config, "status", "--json")
            assert status.returncode == 0, status.stderr
            assert {e["health"] for e in json.loads(status.stdout)["environments"].values()} == {"healthy"}
            assert mailbox.messages == []
            assert slack.payloads == []

            # 2. Production goes unhealthy: exactly one critical alert at mail and Slack (and Alertmanager).
            simulator.simulator.update("production", status="unhealthy")
            await until(
                lambda: len(mailbox.messages) >= 1 and len(slack.payloads) >= 1, what="critical alert"
            )
            served = polls(simulator, "production")
            await until(lambda: polls(simulator, "production") >= served + 6, what="six more failing polls")
            assert len(mailbox.messages) == 1
            assert len(slack.payloads) == 1
            assert "UMIG Health Alert" in mailbox.subjects()[0]
            assert slack.payloads[0]["attachments"][0]["color"] == "danger"
            am_alerts = await asyncio.to_thread(http_json, alertmanager + "/api/v2/alerts")
            assert any(a["labels"].get("environment") == "production" for a in am_alerts)
            metrics = await asyncio.to_thread(http_text, base + "/metrics")
            assert 'umig_health_status{environment="production"} 0.0' in metrics

            # 3. It recovers: one resolved notice.
            simulator.simulator.update("production", status=None)
            await until(
                lambda: len(mailbox.messages) == 2 and len(slack.payloads) == 2, what="resolved notice"
            )
            assert "RESOLVED" in mailbox.subjects()[1]
            assert slack.payloads[1]["attachments"][0]["color"] == "good"

            # 4. A pipeline reports a deployment, 1.2.0 appears in UAT, the watch validates it.
            start_event = await asyncio.to_thread(
                cli,
                config,
                "deploy-event",
                "start",
                "--env",
                "uat",
                "--version",
                "1.2.0",
                "--print",
                "deployment",
            )
            assert start_event.returncode == 0, start_event.stderr
            deployment_id = start_event.stdout.strip()
            watch = asyncio.create_task(
                asyncio.to_thread(
                    cli,
                    config,
                    "watch-deploy",
                    "--env",
                    "uat",
                    "--version",
                    "1.2.0",
                    "--id",
                    deployment_id,
                    "--timeout",
                    "30s",
                )
            )
            await until(
                lambda: "expecting: 1.2.0" in _watch_progress(base, deployment_id), what="watch progress"
            )
            simulator.simulator.update("uat", version="1.2.0", ui_version="1.2.0", backend_version="1.2.0")
            result = await watch
            assert result.returncode == 0, result.stdout + result.stderr
            assert "expecting: 1.2.0" in result.stdout
            await until(lambda: "✅ Deployment Successful" in slack.titles(), what="success message")
            assert "🚀 Deployment Started" in slack.titles()
            history = await asyncio.to_thread(cli, config, "history", "uat", "--json")
            types = [e["type"] for e in json.loads(history.stdout)["events"]]
            assert types[:2] == ["deployment_success", "deployment_start"]

            # 5. UAT is set to a -dev build: a drift alert.
            simulator.simulator.update(
                "uat", version="1.3.0-dev+ci.9", ui_version="1.3.0-dev", backend_version="1.3.0-dev"
            )
            await until(
                lambda: any("uat" in json.dumps(b) and b["status"] == "firing" for b in hook.bodies),
                what="drift alert",
            )

            # 6. Slack answers 429: the message arrives after Retry-After.
            slack.throttle = True
            before = len(slack.payloads)
            simulator.simulator.update("production", status="unhealthy")
            await until(lambda: len(slack.payloads) > before, within=30, what="message after 429")
            assert slack.throttled_at is not None
            assert slack.arrivals[-1] - slack.throttled_at >= 2.0
            simulator.simulator.update("production", status=None)

            # 7. SIGHUP with an added environment: polled without a restart.
            simulator.simulator.add_environment("hotfix")
            write((*envs, "hotfix"))
            daemon.send_signal(signal.SIGHUP)
            await until(lambda: _health_of(base, "hotfix") == "healthy", what="hotfix polled")

            # 8. SIGKILL with deliveries pending, restart: nothing lost, nothing sent twice.
            hook.script = [503] * 1000
            simulator.simulator.update(
                "uat", version="1.2.1-rc.1", ui_version="1.2.1", backend_version="1.2.1"
            )
            await until(lambda: _pending(base, "hook"), what="a pending delivery")
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(10)
            hook.script = []
            daemon = start(config)
            await until(lambda: any(b["status"] == "resolved" for b in hook.bodies), what="pending delivered")
            await until(lambda: _drained(base, "hook"), what="nothing pending for hook")
            served = polls(simulator, "uat")  # and a few dispatch ticks more: no second copy of any
            await until(lambda: polls(simulator, "uat") >= served + 4, what="four more polls")
            assert len(hook.keys) == len(set(hook.keys))

            # 9. The daily report: today's is refused (the day is not over, and each date is sent
            # once); yesterday's is sent, a mail with every section.
            today = time.strftime("%Y-%m-%d", time.gmtime())
            yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
            refused = await asyncio.to_thread(cli, config, "report", "--date", today, "--send")
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "not over yet" in refused.stderr
            before_mail = len(mailbox.messages)
            sent = await asyncio.to_thread(cli, config, "report", "--date", yesterday, "--send")
            assert sent.returncode == 0, sent.stdout + sent.stderr
            await until(lambda: len(mailbox.messages) > before_mail, what="report mail")
            report_mail = mailbox.messages[-1]
            assert f"UMIG Daily Status Report - {yesterday}" in str(report_mail["Subject"])
            body = "".join(
                part.get_payload(decode=True).decode()
                for part in report_mail.walk()
                if part.get_content_type() == "text/plain"
            )
            for heading in (
                "Environment Status Summary:",
                "Deployment Activity:",
                "Health Status Summary:",
                "Performance Summary:",
                "Issues and Alerts:",
                "Version Drift:",
            ):
                assert heading in body, heading
            assert any(p.get_content_type() == "text/html" for p in report_mail.walk())

            # Pushgateway has the UMIG metrics.
            pushed = await asyncio.to_thread(http_text, gateway + "/metrics")
            assert "umig_version_info{" in pushed
            assert 'job="umig-deployment-tracking"' in pushed
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(daemon.wait, 10) == 0


def _ready(base: str) -> bool:
    try:
        return bool(http_json(base + "/readyz")["ready"])
    except OSError:
        return False


def _health_of(base: str, env: str) -> str | None:
    try:
        return str(http_json(base + "/api/v1/environments")["environments"].get(env, {}).get("health"))
    except OSError:
        return None


def _watch_progress(base: str, deployment_id: str) -> str:
    try:
        watch = http_json(f"{base}/api/v1/deployments/{deployment_id}").get("watch") or {}
    except OSError:
        return ""
    return str(watch.get("progress") or "")


def _drained(base: str, sink: str) -> bool:
    try:
        rows = http_json(base + "/api/v1/outbox?status=pending")["deliveries"]
    except OSError:
        return False
    return not any(r["sink"] == sink for r in rows)


def polls(sim: RunningSimulator, env: str) -> int:
    """How many health polls the simulator has served for the environment."""
    return sim.simulator.request_counts(env).get("health", 0)


def _pending(base: str, sink: str) -> bool:
    try:
        rows = http_json(base + "/api/v1/outbox?status=pending")["deliveries"]
    except OSError:
        return False
    return any(r["sink"] == sink and r["attempts"] >= 1 for r in rows)
