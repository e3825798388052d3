#!/usr/bin/env python3
"""Benchmark: `repmgr standby clone` (pgrm, pg_basebackup method) against a bare
`pg_basebackup` of the same primary, in alternating pairs.

    python3 bench/clone.py [--scale 20] [--pairs 3] [--warmup 1]

A primary gets `pgbench -i -s SCALE`. Each pair times both copies into fresh directories
on the same filesystem (the sandbox under /tmp), deleting each copy (and syncing) after
it is timed; the first tool alternates between pairs. pgrm runs as root (it runs
pg_basebackup as postgres itself); pg_basebackup runs as postgres. Prints every pair, the
medians and `ratio pgrm/pg_basebackup (median): X.XX (target <= 1.05)`. It prints; it
never fails on a timing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (check_binary, du_bytes, fmt_bytes, harness, make_primary, median,  # noqa: E402
                      pg_bin, pgbench, pgrm, remove_tree, run_as_pg, timed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--scale', type=int, default=20, help='pgbench -i scale (default 20)')
    ap.add_argument('--pairs', type=int, default=3, help='timed pairs, at least 1 (default 3)')
    ap.add_argument('--warmup', type=int, default=1,
                    help='untimed pg_basebackup copies first, to warm the page cache (default 1)')
    args = ap.parse_args()
    if args.pairs < 1:
        ap.error('--pairs must be at least 1')
    check_binary()

    with harness.Sandbox(prefix='pgrm-bench-clone-') as sb:
        primary = make_primary(sb, 'primary', scale=None)
        load_s, _ = timed(pgbench, primary, '-i', '-s', str(args.scale), '-q', timeout=3600)
        primary.psql('checkpoint')
        port = primary.port
        print(f'# primary: PostgreSQL {primary.psql("show server_version")}, port {port}, '
              f'pgbench -i -s {args.scale} in {load_s:.1f} s, '
              f'data directory {fmt_bytes(du_bytes(primary.datadir))}', flush=True)

        counter = [0]

        def fresh(tool: str) -> Path:
            counter[0] += 1
            return sb.root / f'copy{counter[0]:02d}-{tool}'

        def run_pgrm(target: Path):
            pgrm('-D', target, '-d', 'pgbench', '-h', '127.0.0.1', '-p', port, '-U', 'postgres',
                 'standby', 'clone', check=0, timeout=3600)

        def run_basebackup(target: Path):
            run_as_pg([pg_bin('pg_basebackup'), '-D', target, '-X', 'stream', '-c', 'fast',
                       '-h', '127.0.0.1', '-p', port, '-U', 'postgres'], timeout=3600)

        tools = {'pgrm': run_pgrm, 'pg_basebackup': run_basebackup}

        def measure(tool: str, report_size: bool = False) -> float:
            target = fresh(tool)
            assert not target.exists()
            seconds, _ = timed(tools[tool], target)
            if report_size:
                print(f'#   {tool} copy: {fmt_bytes(du_bytes(target))}', flush=True)
            remove_tree(target)
            return seconds

        for i in range(args.warmup):
            s = measure('pg_basebackup')
            print(f'# warm-up {i + 1}: pg_basebackup {s:.3f} s (not counted)', flush=True)

        times = {'pgrm': [], 'pg_basebackup': []}
        for i in range(args.pairs):
            order = ['pgrm', 'pg_basebackup'] if i % 2 == 0 else ['pg_basebackup', 'pgrm']
            got = {}
            for tool in order:
                got[tool] = measure(tool, report_size=(i == 0))
                times[tool].append(got[tool])
            print(f'pair {i + 1} ({order[0]} first): pgrm {got["pgrm"]:.3f} s, '
                  f'pg_basebackup {got["pg_basebackup"]:.3f} s, '
                  f'ratio {got["pgrm"] / got["pg_basebackup"]:.3f}', flush=True)

        m_pgrm, m_pgbb = median(times['pgrm']), median(times['pg_basebackup'])
        print(f'median pgrm: {m_pgrm:.3f} s')
        print(f'median pg_basebackup: {m_pgbb:.3f} s')
        print(f'ratio pgrm/pg_basebackup (median): {m_pgrm / m_pgbb:.2f} (target <= 1.05)')
    return 0


if __name__ == '__main__':
    t0 = time.monotonic()
    rc = main()
    print(f'# done in {time.monotonic() - t0:.0f} s', flush=True)
    sys.exit(rc)
