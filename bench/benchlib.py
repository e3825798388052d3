"""Shared helpers for pgrm's benchmarks (Python 3 standard library only).

Builds on test/e2e/harness.py: Sandbox/Instance start real PostgreSQL servers in a
throw-away directory under /tmp, run_as_pg runs a program as the postgres OS user, pgrm
runs the built binary (build/cmd/repmgr). See bench/README.md.
"""

from __future__ import annotations

import json
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
from harness import pg_bin, pgrm, run_as_pg, wait_until  # noqa: E402,F401

__all__ = ['harness', 'pg_bin', 'pgrm', 'run_as_pg', 'wait_until', 'REPO', 'make_primary',
           'pgbench', 'du_bytes', 'remove_tree', 'median', 'timed', 'parse_json', 'fmt_bytes',
           'check_binary', 'conf_text']


def check_binary():
    exe = harness.pgrm_path('repmgr')
    if not exe.exists():
        sys.exit(f'{exe} does not exist: build first (ninja -C {harness.BUILD_DIR})')
    if harness.PG_BINDIR is None:
        sys.exit('no PostgreSQL binaries: set PG_BINDIR')


def pgbench(inst: harness.Instance, *args, timeout: float = 3600) -> subprocess.CompletedProcess:
    return run_as_pg([pg_bin('pgbench'), '-h', '127.0.0.1', '-p', inst.port, '-U', 'postgres',
                      *args, 'pgbench'], timeout=timeout)


def make_primary(sb: harness.Sandbox, name: str, scale: int,
                 extra_conf: dict | None = None) -> tuple[harness.Instance, float]:
    """initdb, start, createdb pgbench, pgbench -i -s scale, CHECKPOINT.
    Returns the instance and the seconds pgbench -i took."""
    inst = sb.new_instance(name)
    inst.initdb(extra_conf)
    inst.start()
    inst.psql('create database pgbench')
    t0 = time.monotonic()
    pgbench(inst, '-i', '-s', str(scale), '-q')
    load_s = time.monotonic() - t0
    inst.psql('checkpoint')
    return inst, load_s


def conf_text(cluster: str, node: int, inst: harness.Instance) -> str:
    """The seed's key=value repmgr.conf."""
    return (f'cluster={cluster}\nnode={node}\n'
            f"conninfo='host=127.0.0.1 port={inst.port} user=postgres dbname=pgbench'\n"
            f"data_directory='{inst.datadir}'\n")


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


def parse_json(proc, what: str) -> dict:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise SystemExit(f'{what}: stdout is not one JSON document ({e})\n'
                         f'--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}')


def fmt_bytes(n: int) -> str:
    return f'{n} ({n / (1024 * 1024):.1f} MiB)'
