"""Helpers shared by the benchmark scripts in bench/: printed figures and sections, PASS/MISS
judgements, percentiles, machine and load information, free ports, and the text or JSON output.

Not a script: ``python bench/<name>.py`` puts bench/ on sys.path, so the scripts ``import common``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import umig_monitor

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- results ---------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One printed number. ``value`` None means absent, and ``note`` then says why."""

    key: str
    label: str
    value: float | None
    unit: str
    note: str = ""
    target: str = ""
    verdict: str = ""  # PASS, MISS or "" (no target)

    def render(self, layout: Layout) -> str:
        if self.value is None:
            return f"  {self.label:<{layout.label}} absent: {self.note}"
        digits = 0 if layout.whole(self) else 3 if abs(self.value) < 10 else 1
        shown = f"{self.value:,.{digits}f} {self.unit}".strip()
        target = f"target {self.target}  {self.verdict}" if self.target else ""
        line = f"  {self.label:<{layout.label}} {shown:<{layout.shown}} {target}".rstrip()
        return f"{line}   ({self.note})" if self.note else line


def never(_figure: Figure) -> bool:
    return False


@dataclass(frozen=True)
class Layout:
    """How a script prints its figures: column widths, and which figures show no decimals."""

    heading: str  # the report's first line
    label: int  # width of the label column
    shown: int  # width of the value + unit column
    whole: Callable[[Figure], bool] = never  # printed without decimals (a count)


@dataclass
class Section:
    title: str
    method: str
    figures: list[Figure] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, label: str, value: float, unit: str, note: str = "", **target: Any) -> None:
        self.figures.append(Figure(key, label, value, unit, note, **target))

    def absent(self, key: str, label: str, reason: str) -> None:
        self.figures.append(Figure(key, label, None, "", reason))

    def value(self, key: str) -> float | None:
        return next((f.value for f in self.figures if f.key == key), None)


def judged(limit: str, ok: bool) -> dict[str, str]:
    return {"target": limit, "verdict": "PASS" if ok else "MISS"}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty sequence (with 20 values, p95 and p99 are the max)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def render(layout: Layout, setup: dict[str, Any], sections: Sequence[Section]) -> str:
    out = [layout.heading, *(f"  {k:<12} {v}" for k, v in setup.items())]
    for section in sections:
        out += ["", section.title]
        out += textwrap.wrap(section.method, 104, initial_indent="  how: ", subsequent_indent="       ")
        out += [figure.render(layout) for figure in section.figures]
        if section.facts:
            facts = ", ".join(f"{k}={v}" for k, v in section.facts.items())
            out += textwrap.wrap(facts, 104, initial_indent="  facts: ", subsequent_indent="         ")
    return "\n".join(out)


def output(
    layout: Layout,
    setup: dict[str, Any],
    sections: Sequence[Section],
    as_json: bool,
    extra: dict[str, Any] | None = None,
    default: Callable[[Any], Any] | None = str,
) -> None:
    """Print the results: one JSON document (setup, ``extra``, figures, sections) or the text report."""
    if as_json:
        figures = {f.key: f.value for s in sections for f in s.figures}
        document = {"setup": setup, **(extra or {}), "figures": figures}
        print(json.dumps({**document, "sections": [asdict(s) for s in sections]}, indent=2, default=default))
    else:
        print(render(layout, setup, sections))


# --- the run ---------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    return f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}"


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def started_at() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def started_under_load() -> str:
    return f"{started_at()}, {load()} (other work on the machine inflates every figure)"


def command(script: str, argv: Sequence[str] | None) -> str:
    """The command line as run, e.g. ``python bench/poll.py --envs 20``."""
    return " ".join([f"python bench/{script}", *(sys.argv[1:] if argv is None else argv)])


def code_state(at_top: bool = False) -> str:
    """Where the measured code came from: the package's directory, its commit, uncommitted changes.

    ``at_top``: only a git checkout with the package at its top counts.
    """
    package = Path(umig_monitor.__file__).resolve().parent

    def git(*args: str) -> str:
        command = ["git", "-C", str(package.parent), *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    try:
        if at_top and Path(git("rev-parse", "--show-toplevel").strip()).resolve() != package.parent:
            raise OSError("the package is not at the top of a git checkout")
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = len(git("status", "--porcelain", "--", "umig_monitor").splitlines())
    except (OSError, subprocess.CalledProcessError):
        return f"{package} (not a git checkout)"
    return f"{package} at {head}" + (f" + {dirty} uncommitted changes" if dirty else ", clean")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, all CPUs, from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all its threads), from /proc/<pid>/stat, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- a throwaway PostgreSQL ------------------------------------------------------------------------


# Durability is worthless in a throwaway cluster; a quick start and stop is what matters.
PG_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    "max_connections": "100",
    "max_wal_senders": "0",
    "wal_level": "minimal",
    "log_min_messages": "warning",
}


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own for one benchmark run: ``initdb`` into a temporary directory,
    ``pg_ctl`` on a free loopback port (as the postgres user when run as root), removed by
    :meth:`cleanup`. Durability is off: a quick start matters, the data does not.

    The newest ``/usr/lib/postgresql/*/bin`` is used; :meth:`create` raises RuntimeError (with the
    reason) when there is none, so a script can say so and ask for ``--postgres-url`` instead."""

    DATABASE = "umig"

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.logfile = root / "postgres.log"
        self.port = port

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{self.DATABASE}"

    @property
    def version(self) -> str:
        return self.bindir.parent.name

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    @classmethod
    def create(cls) -> ThrowawayPostgres:
        import glob
        import pwd
        import tempfile

        found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()]
        if not found:
            raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        bindir = max(found, key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")])
        # Not below a directory the postgres user cannot enter; short, for the Unix socket's path.
        root = Path(tempfile.mkdtemp(prefix="umig-bench-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root, but there is no postgres user to run it as") from None
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server = cls(bindir, root, free_port())
        try:
            server._run(
                "initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            )  # fmt: skip
            with (server.data / "postgresql.conf").open("a") as conf:
                conf.write("".join(f"{key} = {value}\n" for key, value in PG_SETTINGS.items()))
                conf.write(f"port = {server.port}\nunix_socket_directories = '{root}'\n")
            server._run("pg_ctl", "-D", str(server.data), "-l", str(server.logfile), "-w", "start")
            server._run("createdb", "-h", HOST, "-p", str(server.port), "-U", "postgres", cls.DATABASE)
        except BaseException:
            server.cleanup()
            raise
        return server

    def cleanup(self) -> None:
        import contextlib
        import shutil

        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=self.root)
        if done.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}\n{log}")
