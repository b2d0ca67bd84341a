"""A dedicated, throwaway PostgreSQL cluster for one test: a test may stop and start it at will.

The shared server `.ci/run` starts (UMIG_TEST_POSTGRES_URL) must stay up for every other test, so a
test that takes the database away gets its own cluster: ``initdb`` into a temporary directory, then
``pg_ctl`` on a free loopback port, run as the postgres user when the tests run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import free_port

DATABASE = "umig"

# Durability is worthless in a throwaway cluster; a quick start and stop is what matters.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "40",
    "max_wal_senders": "0",
    "wal_level": "minimal",
    "log_min_messages": "warning",
}


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin``. Missing: skipped locally, a failure in CI (CI=true)."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()]
    if not found:
        _unavailable("PostgreSQL server binaries are not installed (bash .ci/run installs them)")
    return max(found, key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")])


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class PgServer:
    """One cluster: :meth:`create` runs initdb and starts it; :meth:`stop` and :meth:`start` take it
    away and bring it back on the same port and data directory; :meth:`cleanup` removes it all."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.logfile = root / "postgres.log"
        self.port = port
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @classmethod
    def create(cls) -> PgServer:
        bindir = postgres_bindir()
        as_root = os.geteuid() == 0
        if as_root:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                _unavailable("running as root but there is no postgres user to run PostgreSQL as")
        # Not pytest's tmp_path: it sits below a directory the postgres user cannot enter. Short, too,
        # because the Unix socket's path must fit in 107 bytes.
        root = Path(tempfile.mkdtemp(prefix="umig-pg-"))
        if as_root:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server = cls(bindir, root, free_port())
        try:
            server._run(
                "initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            )  # fmt: skip
            with (server.data / "postgresql.conf").open("a") as conf:
                conf.write("".join(f"{key} = {value}\n" for key, value in SETTINGS.items()))
                conf.write(f"port = {server.port}\nunix_socket_directories = '{root}'\n")
            server.start()
            server._run("createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", DATABASE)
        except BaseException:
            server.cleanup()
            raise
        return server

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "30", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Fast shutdown: clients are disconnected at once, as when the database host goes away."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")
        self.running = False

    def cleanup(self) -> None:
        if self.running or (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}\n{self.log()[-2000:]}"
            )
