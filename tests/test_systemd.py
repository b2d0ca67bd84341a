"""The systemd unit: `systemd-analyze verify` prints nothing at all, and the offline security
score stays at or below 2.0 (the README states the figure)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.support import require_tool

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "systemd" / "umig-monitor.service"


def installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this machine's umig-monitor, as install.sh links it."""
    binary = shutil.which("umig-monitor")
    assert binary is not None, "the package is not installed (pip install -e .)"
    copy = tmp_path / "umig-monitor.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/umig-monitor", binary))
    return copy


def test_verify_is_silent(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    result = subprocess.run([tool, "verify", str(installed_copy(tmp_path))], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout + result.stderr == ""


def test_security_exposure_at_most_2(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    result = subprocess.run(
        [tool, "security", "--offline=true", str(installed_copy(tmp_path))], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for umig-monitor.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_has_what_ops_rely_on() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "EnvironmentFile=-/etc/umig-monitor/env",
        "StateDirectory=umig-monitor",
        "ConfigurationDirectory=umig-monitor",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "LimitNOFILE=65536",
    ):
        assert line in text, line
