"""Config files that cannot be trusted: not UTF-8, empty, truncated, no environments, and values
that must not be echoed back (a secret in the wrong key). Each is a ConfigError naming the key
and line, at start-up (exit 2) and in check-config, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from umig_monitor.config import ConfigError, load_config
from umig_monitor.config.loader import conceal

GOOD = """daemon:
  listen: 127.0.0.1:9
  storage: sqlite:///{db}
environments:
  production:
    base_url: http://127.0.0.1:1/umig
    kind: production
"""


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "umig-monitor.yaml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the file is empty"),
        (b"   \n\n", "the file is empty"),
        (b"daemon:\n  listen: 127.0.0.1:9\n", "no environment is configured"),
        (b"daemon:\n  log_level: info\nenvironments: {}\n", "no environment is configured"),
        (b"daemon:\n  api_token: caf\xe9-s3cret\n", "not UTF-8 text (invalid byte at offset 24) (line 2)"),
    ],
)
def test_unusable_files_are_errors(tmp_path: Path, data: bytes, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data))
    assert expected in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_truncated_file_is_an_error(tmp_path: Path) -> None:
    text = GOOD.format(db=tmp_path / "x.db")
    load_config(write(tmp_path, text.encode()))
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text[: text.index("environments:")].encode()))


@pytest.mark.parametrize(
    ("path", "message", "shown"),
    [
        ("environments.prod.timeout", "invalid duration 'fast'", "invalid duration 'fast'"),
        (
            "environments.prod.timeout",
            "invalid duration 'ghp_0123456789abcdefghijklmnop'",
            "invalid duration <30 characters>",
        ),
        ("daemon.storage", "invalid database URL 'postgresql://u:pw@h/db'", "invalid database URL <hidden>"),
        ("sinks.hook.headers.Authorization", 'bad header "Bearer x"', "bad header <hidden>"),
        ("sinks.ops.password", "too short: 'abc'", "too short: <hidden>"),
    ],
)
def test_conceal_hides_values_that_may_be_secrets(path: str, message: str, shown: str) -> None:
    assert conceal(path, message) == shown


def test_a_token_in_the_wrong_key_is_not_echoed(tmp_path: Path) -> None:
    text = GOOD.format(db=tmp_path / "x.db") + "    timeout: ghp_0123456789abcdefghijklmnop\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text.encode()))
    assert "environments.production.timeout" in str(caught.value)
    assert "ghp_0123456789" not in str(caught.value)


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("data", [b"", b"daemon:\n  api_token: \xff\xfe s3cret\n"])
def test_check_config_and_run_exit_2_without_a_traceback(tmp_path: Path, command: str, data: bytes) -> None:
    path = write(tmp_path, data)
    result = subprocess.run(
        [sys.executable, "-m", "umig_monitor", command, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert str(path) in result.stdout + result.stderr


@pytest.mark.parametrize("value", ["99999999999d", "9999999999999w", "1e999", "1e400s"])
def test_an_overflowing_duration_is_an_error_naming_the_key(tmp_path: Path, value: str) -> None:
    text = GOOD.format(db=tmp_path / "x.db") + f"    timeout: {value}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text.encode()))
    assert "environments.production.timeout" in str(info.value)
    assert "(line 8)" in str(info.value)
    assert "century" in str(info.value) or "invalid duration" in str(info.value)
