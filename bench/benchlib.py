"""Shared helpers for pgrm's benchmarks (Python 3 standard library only).

Builds on test/e2e/harness.py: Sandbox/Instance start real PostgreSQL servers in a
throw-away directory under /tmp, run_as_pg runs a program as the postgres OS user, pgrm
runs the built binary (build/cmd/repmgr); the cluster setup steps (make_primary,
write_conf, pgbench, waiting for streaming, ...) are harness's too, shared with the e2e
tests, and re-exported here. See bench/README.md.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'test' / 'e2e'))
import harness  # noqa: E402
from harness import (end_process_group, freeze, make_primary, parse_json, pg_bin,  # noqa: E402,F401
                     pgbench, pgbench_background, pgrm, run_as_pg, streaming, thaw,
                     wait_streaming, wait_streaming_from, wait_until, write_conf)

__all__ = ['harness', 'pg_bin', 'pgrm', 'run_as_pg', 'wait_until', 'REPO', 'make_primary',
           'pgbench', 'du_bytes', 'remove_tree', 'median', 'timed', 'parse_json', 'fmt_bytes',
           'check_binary', 'write_conf', 'end_process_group', 'freeze', 'pgbench_background',
           'streaming', 'thaw', 'wait_streaming', 'wait_streaming_from']


def check_binary():
    exe = harness.pgrm_path('repmgr')
    if not exe.exists():
        sys.exit(f'{exe} does not exist: build first (ninja -C {harness.BUILD_DIR})')
    if harness.PG_BINDIR is None:
        sys.exit('no PostgreSQL binaries: set PG_BINDIR')


def du_bytes(path: Path) -> int:
    """`du -sb path` (apparent size, bytes)."""
    out = subprocess.run(['du', '-sb', str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def remove_tree(path: Path):
    """Deletes path and flushes the page cache's dirty pages (outside any timed window),
    so one copy's write-back does not land in the next copy's time."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()


def median(values):
    return statistics.median(values)


def timed(fn, *args, **kwargs):
    """(seconds, result) of fn(*args, **kwargs), wall clock."""
    t0 = time.monotonic()
    result = fn(*args, **kwargs)
    return time.monotonic() - t0, result


def fmt_bytes(n: int) -> str:
    return f'{n} ({n / (1024 * 1024):.1f} MiB)'
