"""``umig-monitor demo``: the simulator with the guide's environments and the daemon against it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

from umig_monitor.app import Daemon
from umig_monitor.config import ConfigError, load_config
from umig_monitor.simulator import start_simulator
from umig_monitor.storage import StorageError

DEMO_ENVIRONMENTS = ("development", "uat", "production")


async def run_demo(config_path: Path, port: int, simulator_port: int, data_dir: Path) -> int:
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    simulator = await start_simulator(DEMO_ENVIRONMENTS, port=simulator_port)
    daemon: Daemon | None = None
    try:
        # demo.yaml is an ordinary config; these variables point it at this run's simulator and data dir.
        os.environ["UMIG_DEMO_SIMULATOR_URL"] = simulator.url
        os.environ["UMIG_DEMO_DATA_DIR"] = str(data_dir)
        os.environ["UMIG_DEMO_LISTEN"] = f"127.0.0.1:{port}"
        try:
            settings = load_config(config_path)
        except ConfigError as exc:
            print("\n".join(str(i) for i in exc.issues))
            return 2
        daemon = Daemon(settings, config_path)
        try:
            await daemon.start()
        except (StorageError, OSError) as exc:
            print(f"demo could not start: {exc}")
            return 2
        base = daemon.listen_url
        ops_config = await asyncio.to_thread(write_ops_config, config_path, data_dir)
        token = settings.daemon.read_api_token()
        print(
            "\numig-monitor demo is running (Ctrl-C to stop)\n"
            f"  status page      {base}/\n"
            f"  environments     {base}/api/v1/environments\n"
            f"  liveness/ready   {base}/healthz  {base}/readyz\n"
            f"  metrics          {base}/metrics\n"
            f"  database         {data_dir / 'umig-monitor.db'}\n"
            f"  simulator        {simulator.url}/<environment>/rest/scriptrunner/latest/custom/admin/health\n"
            f"  ops commands     umig-monitor status --config {ops_config}\n"
            f"                   (also alerts, history, dora, drift, deploy-event, watch-deploy ...)\n"
            f"  API token        {token or 'none'} (POST endpoints: Authorization: Bearer <token>)\n"
            f"  make production unhealthy:\n"
            f"    curl -X PATCH {simulator.url}/_control/environments/production "
            "-H 'Content-Type: application/json' -d '{\"status\": \"unhealthy\"}'\n",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
        stopper = asyncio.ensure_future(daemon.wait_for_stop())
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({stopper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        waiter.cancel()
        return 0
    finally:
        if daemon is not None:
            await daemon.stop()
        await simulator.stop()


def write_ops_config(config_path: Path, data_dir: Path) -> Path:
    """The demo's config with this run's values filled in (simulator URL, data dir, listen), so
    that the ops commands in another terminal read the same storage: ``--config`` this file."""
    text = config_path.read_text(encoding="utf-8")
    values = {n: os.environ[n] for n in ("UMIG_DEMO_SIMULATOR_URL", "UMIG_DEMO_DATA_DIR", "UMIG_DEMO_LISTEN")}
    text = re.sub(r"\$\{(UMIG_DEMO_[A-Z_]+)(:-[^}]*)?\}", lambda m: values.get(m[1], m[0]), text)
    target = data_dir / "umig-monitor.yaml"
    target.write_text(
        "# Written by `umig-monitor demo` for the ops commands: --config this file.\n" + text,
        encoding="utf-8",
    )
    return target
