"""glibc malloc thresholds for the serving process (service/malloc.py)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from service.malloc import tune_malloc
from service.settings import Settings


def test_malloc_tuning_is_on_by_default_and_can_be_turned_off() -> None:
    assert Settings().malloc_tuning is True
    assert Settings.from_env({"LIVER_CDS_MALLOC_TUNING": "false"}).malloc_tuning is False


@pytest.mark.parametrize(
    "name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"]
)
def test_an_operator_tuning_malloc_in_the_environment_keeps_it(name: str) -> None:
    assert tune_malloc({name: "131072"}) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_thresholds_and_a_large_body_is_then_not_faulted_in_per_call() -> None:
    """Blocks from 180 KiB growing to 980 KiB, each freed before the next (as bodies of
    different sizes are, call after call): without the thresholds each is larger than any
    freed before, so glibc maps it afresh and every page is faulted in; with them they come
    from the heap, whose pages are kept."""
    script = textwrap.dedent(
        """
        import resource, sys
        from service.malloc import tune_malloc
        tuned = tune_malloc({}) if sys.argv[1] == "tuned" else None
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for i in range(200):
            block = b"x" * (180 * 1024 + 4096 * i)  # written, so its pages are touched
            del block
        print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        """
    )

    def run(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", script, mode],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        ).stdout.split()
        return out[0], int(out[1])

    tuned, tuned_faults = run("tuned")
    _, default_faults = run("default")
    assert tuned == "True"
    assert default_faults > 10 * max(tuned_faults, 1)
