"""Every install path installs exactly uv.lock: the environment the suite runs in, and the
virtualenv that deploy/systemd/install.sh builds (the same command the container image runs)."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "uv.lock"
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m\n"
    "for d in m.distributions():\n"
    "    print(f\"{d.metadata['Name']}=={d.version}\")\n"
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    packages = tomllib.loads(LOCK.read_text())["package"]
    return {canonical(p["name"]): p["version"] for p in packages if "version" in p}


def test_the_suite_runs_on_the_locked_versions() -> None:
    locked = locked_versions()
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(d for ds in project["optional-dependencies"].values() for d in ds)]
    direct = {canonical(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in wanted}
    missing = sorted(direct - installed.keys())
    assert not missing, f"declared but not installed: {missing}"
    drift = {name: (installed[name], version) for name, version in locked.items() if name in installed}
    drift = {name: pair for name, pair in drift.items() if pair[0] != pair[1]}
    assert not drift, f"installed != uv.lock (installed, locked): {drift}"


def test_linters_are_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {
        canonical(re.split(r"[=<>]", d, maxsplit=1)[0]): d for d in project["optional-dependencies"]["test"]
    }
    for tool in ("ruff", "mypy"):
        assert re.fullmatch(rf"{tool}==[0-9][0-9.]*", pins[tool]), pins[tool]
        assert pins[tool].split("==")[1] == locked_versions()[tool]


def test_container_and_systemd_install_from_the_lock() -> None:
    dockerfile = (ROOT / "deploy" / "container" / "Dockerfile").read_text()
    install = (ROOT / "deploy" / "systemd" / "install.sh").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for text in (dockerfile, install, ci):
        assert re.search(r"uv\S*\s+sync\b.*--frozen", text), "installs without the lock"
        pip_installs = [line for line in text.splitlines() if re.search(r"pip\W+install", line)]
        assert all("uv==" in line for line in pip_installs), f"a pip install besides uv's own: {pip_installs}"
    readme = (ROOT / "README.md").read_text()
    texts = (dockerfile, install, ci, readme)
    uv_pins = {m for text in texts for m in re.findall(r"\buv(?:_version)?=+\"?([0-9][0-9.]*[0-9])", text)}
    assert len(uv_pins) == 1, f"uv is pinned differently: {uv_pins}"


@pytest.mark.slow
def test_install_sh_builds_a_virtualenv_of_exactly_the_lock(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PREFIX": str(tmp_path / "opt"),
        "CONFIG_DIR": str(tmp_path / "etc"),
        "UNIT_DIR": str(tmp_path / "systemd"),
        "BIN_DIR": str(tmp_path / "bin"),
    }
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "systemd" / "install.sh")], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "systemd" / "umig-monitor.service").is_file()
    assert (tmp_path / "etc" / "umig-monitor.yaml").is_file()
    listed = subprocess.run(
        [
            str(tmp_path / "opt" / "bin" / "python"),
            "-c",
            LIST_DISTRIBUTIONS,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    installed = {canonical(n): v for n, v in (line.split("==") for line in listed)}
    locked = locked_versions()
    assert installed.pop("umig-monitor") == locked["umig-monitor"]
    assert {"aiohttp", "asyncpg", "sqlalchemy", "apscheduler"} <= installed.keys()
    assert "pytest" not in installed
    assert "playwright" not in installed
    assert {n: v for n, v in installed.items() if locked.get(n) != v} == {}
    checked = subprocess.run(
        [
            str(tmp_path / "bin" / "umig-monitor"),
            "check-config",
            "--config",
            str(tmp_path / "etc" / "umig-monitor.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in checked.stderr
