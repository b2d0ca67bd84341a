"""The ``umig-monitor`` command: the daemon, its config check, the simulator and the ops commands
that replace the guide's quick-reference scripts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from umig_monitor import __version__, eventloop
from umig_monitor.config import ConfigError, Settings, load_config, resolve_config_path, secret_file_warnings
from umig_monitor.config.loader import CONFIG_ENV_VAR
from umig_monitor.core.deployments import EventError
from umig_monitor.core.rollouts import EventConflict
from umig_monitor.logs import configure_logging
from umig_monitor.pipeline.actions import ActionError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
REPO_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def _load(args: argparse.Namespace) -> tuple[Settings, Path]:
    path = resolve_config_path(args.config)
    return load_config(path), path


def _print_config_error(exc: ConfigError) -> None:
    if not Path(exc.source).exists():
        print(
            f"{exc.source}: no such config file. Point the command at the daemon's config with "
            f"--config FILE or ${CONFIG_ENV_VAR} (a running `umig-monitor demo` prints its own).",
            file=sys.stderr,
        )
        return
    print(f"{exc.source}: configuration is invalid:", file=sys.stderr)
    for issue in exc.issues:
        print(f"  {issue}", file=sys.stderr)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings, path = _load(args)
    for warning in secret_file_warnings(settings):
        print(f"warning: {warning} (read at use time)", file=sys.stderr)
    for warning in settings.alertmanager_warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{path}: OK ({len(settings.environments)} environments, {len(settings.sinks)} sinks, "
        f"{len(settings.routes)} routes)"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from umig_monitor.app import run

    settings, path = _load(args)
    configure_logging(settings.daemon.log_level, settings.daemon.log_format, sys.stdout)
    return run(settings, path)


def cmd_simulate(args: argparse.Namespace) -> int:
    from umig_monitor.simulator import serve

    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    configure_logging("info", "auto")
    print(
        f"UMIG simulator for {', '.join(envs)} on http://{args.host}:{args.port}/<env>{args.prefix}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(envs, args.host, args.port, args.prefix))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from umig_monitor.demo import run_demo

    configure_logging("info", "auto", sys.stdout)
    return eventloop.run(
        run_demo(
            Path(args.config) if args.config else REPO_CONFIG_DIR / "demo.yaml",
            args.port,
            args.simulator_port,
            args.data_dir or _default_data_dir(),
        )
    )


class UnknownEnvironment(ValueError):
    """An environment named on the command line that the config does not have (exit 2)."""


# The argument that names an environment, per command (``--env`` is stored as ``env``).
_ENVIRONMENT_ARGS = ("environment", "env")


def _known_environment(settings: Settings, args: argparse.Namespace) -> None:
    """Every command refuses an environment the config does not know, before doing anything: an
    empty history of a misspelt one would read as "no deployments"."""
    for name in _ENVIRONMENT_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value and value not in settings.environments:
            known = ", ".join(settings.environments)
            raise UnknownEnvironment(f"unknown environment '{value}' (known: {known})")


def _ops(handler_name: str) -> Any:
    """Wrap an async ops command: load config, run it, map storage errors to a message."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        from umig_monitor.storage import StorageError

        module, _, func = handler_name.rpartition(".")
        target = getattr(importlib.import_module(f"umig_monitor.commands.{module}"), func)
        settings, _ = _load(args)
        configure_logging("warning", "auto")
        _known_environment(settings, args)
        try:
            code: int = asyncio.run(target(settings, args))
        except StorageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except EventConflict as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (ActionError, EventError, UnknownEnvironment) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return code

    return handler


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "umig-monitor" / "demo"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="umig-monitor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"umig-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--config",
            "-c",
            help="config file (default: $UMIG_MONITOR_CONFIG or /etc/umig-monitor/umig-monitor.yaml)",
        )
        return p

    command("run", "run the daemon").set_defaults(func=cmd_run)
    command("check-config", "validate the config file; exit 2 with every error").set_defaults(
        func=cmd_check_config
    )

    p = command(
        "status", "environment, version, health, uptime and last check (exit 1: production unhealthy)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_ops("status.status"))

    p = command("cluster", "replicas, the leader and who polls what (exit 1: no leader)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--assignments", action="store_true", help="also list every environment's replica")
    p.set_defaults(func=_ops("cluster.cluster"))

    p = command("check", "poll one environment now and print every endpoint and component")
    p.add_argument("environment")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_ops("status.check"))

    p = command("alerts", "active alerts and history")
    p.add_argument("--active", action="store_true", help="only firing alerts")
    p.add_argument("--since", help="e.g. 24h, or an ISO timestamp")
    p.add_argument("--environment", "--env")
    p.add_argument("--type")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_ops("alerts.alerts"))

    p = command("ack", "acknowledge an alert (stops its escalation)")
    p.add_argument("id", type=int)
    p.add_argument("--by", default=os.environ.get("USER") or "cli")
    p.set_defaults(func=_ops("alerts.ack"))

    p = command("silence", "suppress notifications for matching alerts (checks still run and record)")
    p.add_argument("action", choices=["add", "list", "expire"])
    p.add_argument("id", nargs="?", help="silence id (expire)")
    p.add_argument(
        "--matcher", "-m", action="append", default=[], help='e.g. environment=uat, type=~"drift.*"'
    )
    p.add_argument("--duration", help="how long (add): e.g. 2h, 30m; required")
    p.add_argument("--author", default=os.environ.get("USER") or "cli")
    p.add_argument("--comment", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_ops("alerts.silence"))

    p = command(
        "escalate", "raise a manual alert through routing until resolved (the guide's escalate-alert.sh)"
    )
    p.add_argument("type", help="e.g. deployment_failure")
    p.add_argument("environment")
    p.add_argument("severity", choices=["critical", "warning", "info"])
    p.add_argument("--message", "-m")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for delivery without a daemon")
    p.set_defaults(func=_ops("alerts.escalate_cmd"))

    p = command("resolve", "resolve a manual alert raised by escalate (its resolved notice is sent)")
    p.add_argument("id", type=int)
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for delivery without a daemon")
    p.set_defaults(func=_ops("alerts.resolve_cmd"))

    p = command("notify-test", "send a test notification through one sink, or all of them")
    p.add_argument("sink", nargs="?")
    p.set_defaults(func=_ops("alerts.notify_test"))

    p = command("deploy-event", "record a deployment event (the guide's log-deployment-event); prints its id")
    p.add_argument("event", choices=["start", "success", "failure", "rollback"])
    p.add_argument("--env", required=True)
    p.add_argument("--version", required=False)
    p.add_argument("--to-version")
    p.add_argument("--id", help="deployment id (default: a new one for start, the open start for success)")
    p.add_argument("--error")
    p.add_argument("--duration", help="seconds or e.g. 4m30s")
    p.add_argument("--initiated-by", default=os.environ.get("USER"))
    p.add_argument("--meta", action="append", default=[], help="k=v (commit_sha, commit_time, pipeline_url)")
    p.add_argument("--print", choices=["event", "deployment"], default="event", help="which id to print")
    p.set_defaults(func=_ops("deployments.deploy_event"))

    p = command("watch-deploy", "wait for a version to appear, validate it; exit 0 verified, 1 not")
    p.add_argument("--env", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--timeout", help="e.g. 10m (default deployments.watch_timeout)")
    p.add_argument("--id", help="deployment id")
    p.set_defaults(func=_ops("deployments.watch_deploy"))

    p = command("history", "deployment history with its summary (the guide's query-deployment-history)")
    p.add_argument(
        "environment",
        nargs="?",
        type=lambda v: None if v == "all" else v,
        help="one environment, or all (the guide's `all`)",
    )
    p.add_argument("days_arg", nargs="?", type=float, metavar="DAYS", help="as --days (the guide's form)")
    p.add_argument("--days", type=float, default=None, help="how far back (default 30)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--export", choices=["jsonl"], help="write the guide's deployment-history.jsonl records")
    p.set_defaults(func=_ops("deployments.history"))

    p = command("import-history", "import a deployment-history.jsonl file; malformed lines are reported")
    p.add_argument("file")
    p.set_defaults(func=_ops("deployments.import_history"))

    p = command("dora", "DORA figures per environment")
    p.add_argument("--days", type=float, default=90)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_ops("deployments.dora_cmd"))

    p = command("drift", "version matrix and drift findings (exit 1 when there is drift)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_ops("insights.drift"))

    p = command("baseline", "measure a performance baseline now, store and compare it (exit 1: regression)")
    p.add_argument("environment")
    p.add_argument("--version", help="the version expected to be running (the guide's first argument)")
    p.add_argument("--samples", type=int, help="requests per endpoint (default jobs.baseline.samples)")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for a regression alert's delivery"
    )
    p.set_defaults(func=_ops("insights.baseline"))

    p = command("report", "the daily status report of a past day (default: yesterday), from storage")
    p.add_argument("--date", help="YYYY-MM-DD, a day in daemon.timezone (default: yesterday)")
    p.add_argument("--format", choices=["text", "html", "json"], default="text")
    p.add_argument("--output", "-o", help="write the report to this file instead of stdout")
    p.add_argument(
        "--send",
        action="store_true",
        help="also send it, as the daily job does (once per date; a day that is over)",
    )
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for delivery with --send")
    p.set_defaults(func=_ops("report.report"))

    p = sub.add_parser("simulate", help="serve simulated UMIG environments (for demos and tests)")
    p.add_argument("--envs", default="development,uat,production")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--prefix", default="/rest/scriptrunner/latest/custom")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="run the simulator and the daemon against it, with SQLite storage")
    p.add_argument("--config", "-c", help="demo config (default: config/demo.yaml)")
    p.add_argument("--port", type=int, default=9464, help="daemon port")
    p.add_argument("--simulator-port", type=int, default=0, help="simulator port (default: a free one)")
    p.add_argument("--data-dir", type=Path, default=None, help="where the demo keeps its database")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_USAGE
    except UnknownEnvironment as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`, `| grep -q`): not an error of ours. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
