"""The glibc malloc tuning of CPU runs: applied on glibc, switchable off."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = "from benchmark.allocator import tune_glibc_malloc as t; print(t(), t())"


def _run(env_value: str | None, monkeypatch) -> str:
    if env_value is None:
        monkeypatch.delenv("BENCH_MALLOC_TUNE", raising=False)
    else:
        monkeypatch.setenv("BENCH_MALLOC_TUNE", env_value)
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_applied_once_on_glibc_and_off_with_the_switch(monkeypatch):
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _run(None, monkeypatch) == "True True"
    assert _run("0", monkeypatch) == "False False"
