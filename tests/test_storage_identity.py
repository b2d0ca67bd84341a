"""A SQLite file deleted or replaced under a running daemon is noticed: readiness fails with the
reason and one storage_unhealthy line is logged, instead of every later write going into an
unlinked file and being lost at the next restart."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support import ConfigWriter, api, running_daemon, until
from umig_monitor.simulator import RunningSimulator


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_sqlite_file_deleted_or_replaced_makes_readiness_fail(
    simulator: RunningSimulator,
    write_config: ConfigWriter,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    config = write_config(simulator, extra="", poll_interval="200ms")
    config.write_text(
        config.read_text().replace("daemon:\n", "daemon:\n  storage_check_interval: 100ms\n", 1)
    )
    database = tmp_path / "umig-monitor.db"
    async with running_daemon(config) as daemon:
        await until(lambda: daemon.first_round_done(), what="first poll round")
        status, body = await api(daemon, "GET", "/readyz")
        assert status == 200, body
        await asyncio.to_thread(pull_away, database, how)

        async def not_ready() -> dict[str, Any] | None:
            status, body = await api(daemon, "GET", "/readyz")
            return body if status == 503 else None

        body = await until(not_ready, what="readiness failing")
        assert "deleted or replaced" in body["checks"]["storage"]
        seen: list[str] = []

        def logged() -> bool:
            seen.append(capsys.readouterr().err)
            return "storage_unhealthy" in "".join(seen)

        await until(logged, what="a storage_unhealthy line")
        await asyncio.sleep(0.3)  # three more checks: still one line
        assert "".join([*seen, capsys.readouterr().err]).count("storage_unhealthy") == 1
        status, _ = await api(daemon, "GET", "/healthz")
        assert status == 200


def pull_away(database: Path, how: str) -> None:
    if how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    else:
        other = database.with_name("other.db")
        other.write_bytes(b"")
        os.replace(other, database)
