"""glibc's malloc thresholds for a serving process, so a hook body is not faulted in per call.

Why: glibc serves an allocation above its mmap threshold (128 KiB at start, raised
dynamically to the largest block freed so far) with a fresh ``mmap``, and gives free
memory at the top of the heap back to the kernel once it passes the trim threshold (twice
the mmap threshold). A hook body of a few hundred KiB, the dicts parsed from it and the
answer are allocated and freed once per call, so every call asked the kernel for the same
pages again: 44 minor page faults per W1 call (180 KiB body), each one a trap and a page
zeroed. With the thresholds below a W1 call takes 0.7 faults; ``bench/run.py --variants
malloc`` measured 0.91x the CPU per call, 11 % more throughput and a lower single-call
p50 (1.3 against 1.9 ms), with W2's peak RSS unchanged (docs/performance.md).

What it costs: bodies and blocks up to :data:`MMAP_THRESHOLD_BYTES` come from the heap,
and up to :data:`TRIM_THRESHOLD_BYTES` of free heap stay with the process between calls
(the W2 body, 5 MiB, is still mapped and unmapped on its own). An operator who sets any
of glibc's ``MALLOC_*_`` tunables in the environment keeps them: nothing is changed then.
Elsewhere (musl, macOS) this does nothing. ``LIVER_CDS_MALLOC_TUNING=false`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Mapping
from typing import Final

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "tune_malloc"]

MMAP_THRESHOLD_BYTES: Final = 1024 * 1024
"""Allocations below this come from the heap (glibc's ``M_MMAP_THRESHOLD``)."""

TRIM_THRESHOLD_BYTES: Final = 16 * 1024 * 1024
"""Free heap kept before glibc returns it to the kernel (``M_TRIM_THRESHOLD``)."""

_M_TRIM_THRESHOLD: Final = -1  # malloc.h
_M_MMAP_THRESHOLD: Final = -3

_OPERATOR_TUNABLES: Final = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
    "GLIBC_TUNABLES",
)


def tune_malloc(environ: Mapping[str, str] = os.environ) -> bool:
    """Set the two thresholds in this process; True if glibc accepted both.

    Does nothing (False) outside glibc, or when the environment already tunes malloc.
    """
    if any(name in environ for name in _OPERATOR_TUNABLES):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    mmap_set = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1)
    trim_set = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)
    return mmap_set and trim_set
