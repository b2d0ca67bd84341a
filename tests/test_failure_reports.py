"""The guard in conftest.py: a failing test's report is printed even when garbage with a finalizer
that parses is waiting to be collected (CPython 3.11 otherwise crashes pytest with an
INTERNALERROR), and a pending asyncio task a test leaves behind fails that test.

Each case runs pytest in a subprocess on a generated test file, with tests/conftest.py as its
only plugin of ours.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = ("-o", "asyncio_default_fixture_loop_scope=function", "-W", "error")

# The finalizer parses, as asyncio's report of a destroyed pending task did (through logging)
# in the CI run of issue 13. Collected while pytest's traceback formatting is inside
# ast.parse, it broke the parser's recursion bookkeeping. The padding makes the test module
# large enough that parsing it allocates past the raised threshold, so without the guard the
# collector runs inside that parse.
HAZARD = """
import ast
import gc

PADDING = [
{padding}]


class Reparses:
    def __del__(self) -> None:
        ast.parse("def f(x):\\n    return [x, {{'a': (x,)}}]\\n")


def test_fails_with_garbage_that_parses_when_collected() -> None:
    gc.disable()
    for _ in range(50):
        garbage = Reparses()
        garbage.cycle = garbage
    del garbage
    gc.set_threshold(5000)
    gc.enable()
    assert 6 * 7 == 43
"""

LEAK = """
import asyncio
import gc

import pytest


async def wait_forever() -> None:
    await asyncio.get_running_loop().create_future()


@pytest.mark.asyncio
async def test_leaves_a_pending_task_behind() -> None:
    task = asyncio.create_task(wait_forever())
    await asyncio.sleep(0)
    del task  # nothing refers to it now but the future it waits on
    gc.collect()
"""


def run_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_generated.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q", *OPTIONS],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_failure_is_reported_whatever_garbage_waits(tmp_path: Path) -> None:
    padding = "".join(f"    ({i}, {{'n': [{i}, {i + 1}]}}),\n" for i in range(3000))
    done = run_pytest(tmp_path, HAZARD.format(padding=padding))
    output = done.stdout + done.stderr
    assert "INTERNALERROR" not in output, output[-3000:]
    assert "assert (6 * 7) == 43" in output, output[-3000:]
    assert "1 failed" in output, output[-3000:]
    assert done.returncode == 1


def test_a_leaked_pending_task_fails_its_test(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, LEAK)
    output = done.stdout + done.stderr
    assert "ERROR at teardown of test_leaves_a_pending_task_behind" in output, output[-3000:]
    assert "1 asyncio task(s) destroyed while still pending" in output, output[-3000:]
    assert "wait_forever()" in output, output[-3000:]
    assert "1 passed, 1 error" in output, output[-3000:]
    assert done.returncode == 1
