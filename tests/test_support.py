"""The shared test helpers: golden files are checked, never rewritten, in CI; until() returns the
first truthy value and, at its deadline, says what it waited for and what it last saw."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support import check_golden, until


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    path = tmp_path / "golden" / "case.txt"
    path.parent.mkdir()
    path.write_text("as reviewed\n", encoding="utf-8")
    return path


def test_golden_matches(golden: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UMIG_REGENERATE_GOLDEN", raising=False)
    check_golden(golden, "as reviewed\n")


def test_golden_difference_fails(golden: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UMIG_REGENERATE_GOLDEN", raising=False)
    with pytest.raises(AssertionError, match=r"case\.txt differs from its golden file"):
        check_golden(golden, "changed\n")


def test_golden_missing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UMIG_REGENERATE_GOLDEN", raising=False)
    with pytest.raises(AssertionError, match="missing golden file"):
        check_golden(tmp_path / "nothing.txt", "anything\n")


def test_golden_regenerated_on_a_developer_machine(golden: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMIG_REGENERATE_GOLDEN", "1")
    monkeypatch.delenv("CI", raising=False)
    check_golden(golden, "changed\n")
    check_golden(golden.parent / "new" / "case.txt", "new\n")
    assert golden.read_text(encoding="utf-8") == "changed\n"
    assert (golden.parent / "new" / "case.txt").read_text(encoding="utf-8") == "new\n"


@pytest.mark.parametrize("actual", ["as reviewed\n", "changed\n"])
def test_golden_regeneration_is_refused_in_ci(
    golden: Path, monkeypatch: pytest.MonkeyPatch, actual: str
) -> None:
    """In CI a regenerating run would pass whatever the code produces: it fails instead, matching
    or not, and leaves the golden file as it is."""
    monkeypatch.setenv("UMIG_REGENERATE_GOLDEN", "1")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI checks golden files, never rewrites them"):
        check_golden(golden, actual)
    with pytest.raises(pytest.fail.Exception):
        check_golden(golden.parent / "new.txt", actual)
    assert golden.read_text(encoding="utf-8") == "as reviewed\n"
    assert not (golden.parent / "new.txt").exists()


async def test_until_returns_the_first_truthy_value() -> None:
    calls: list[int] = []

    def third_time() -> list[int]:
        calls.append(len(calls))
        return calls if len(calls) >= 3 else []

    assert await until(third_time, interval=0) == [0, 1, 2]

    async def answer() -> str:
        await asyncio.sleep(0)
        return "ready"

    assert await until(answer) == "ready"
    assert await until(lambda: answer()) == "ready"  # a lambda around a coroutine function


async def test_until_names_what_it_waited_for_and_what_it_last_saw() -> None:
    seen = iter(range(1000))
    with pytest.raises(AssertionError, match=r"not within 0\.1s: the count; last value: False$"):
        await until(lambda: next(seen) < 0 and 1, within=0.1, what="the count")
    empty: list[str] = []
    with pytest.raises(AssertionError, match=r"not within 0\.1s: .*lambda: empty, within.*last value: \[\]$"):
        await until(lambda: empty, within=0.1)  # no `what`: the source line says it
