#!/usr/bin/env python3
"""Soak: three repmgrd for a long time, through a failover and a rejoin every few
minutes; nothing a daemon holds may grow without bound.

    python3 bench/soak.py [--minutes 60] [--cycle 5] [--sample 10]

Three nodes as the e2e tests build them (harness.setup_three: node1 primary, node2 and
node3 cloned, a repmgrd on each with failover=automatic and the tests' fast timings), and
a light writer committing a row every 50 ms on whichever node accepts writes. The run is
--minutes long, cut into cycles of --cycle minutes; each cycle starts with a failover and
a rejoin, then the cluster stays idle until the cycle ends:

  1. kill -9 of the primary's postmaster (its daemon keeps running);
  2. wait until exactly one other node accepts writes, and the third streams from it;
  3. `repmgr node rejoin` of the old primary (pg_rewind), until it streams from the new one.

Every --sample seconds it reads each daemon's resident size (VmRSS), open file descriptors
(/proc/<pid>/fd) and threads (/proc/<pid>/status). The first cycle is the warm-up
(connections, the first failover's allocations). Prints each cycle, then per daemon the
start, end and max of each figure, and fails (exit 1) when a daemon died, a failover or a
rejoin did not complete, or a figure grows without bound: the last cycle's maximum above
the maximum of the first cycle after the warm-up by more than RSS 1 MB (or 10 %), 2 file
descriptors or 1 thread. A run needs at least three cycles.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import AckWriter, check_binary, harness, load_average, parse_json, pgrm  # noqa: E402

FIGURES = ('rss_kb', 'fds', 'threads')
TOLERANCE = {'rss_kb': lambda base: max(1024, base // 10), 'fds': lambda base: 2,
             'threads': lambda base: 1}


def sample(pid: int) -> dict | None:
    """A daemon's VmRSS (kB), open file descriptors and threads; None when it is gone."""
    try:
        out = {'fds': len(os.listdir(f'/proc/{pid}/fd'))}
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key == 'VmRSS':
                    out['rss_kb'] = int(value.split()[0])
                elif key == 'Threads':
                    out['threads'] = int(value)
        return out
    except (FileNotFoundError, ProcessLookupError):
        return None


class Sampler(threading.Thread):
    """Samples every daemon every `every` seconds: samples[node] = [(cycle, figures)]."""

    def __init__(self, pids: dict, every: float):
        super().__init__(daemon=True)
        self.pids, self.every = pids, every
        self.cycle = 0
        self.samples: dict = {i: [] for i in pids}
        self.died: dict = {}
        self._done = threading.Event()

    def run(self):
        while True:
            for i, pid in self.pids.items():
                s = sample(pid)
                if s is None:
                    self.died.setdefault(i, self.cycle)
                elif i not in self.died:
                    self.samples[i].append((self.cycle, s))
            if self._done.wait(self.every):
                return

    def stop(self):
        self._done.set()
        self.join(30)


def failover_and_rejoin(c: harness.DaemonCluster, primary: int) -> tuple:
    """Kills the primary's postmaster, waits for the new primary, rejoins the old one.
    Returns (new primary id, seconds to the promotion, seconds of the rejoin, method)."""
    others = [i for i in c.nodes if i != primary]
    t0 = time.monotonic()
    c.nodes[primary].kill9()
    new = harness.wait_until(lambda: harness.one_promoted(c, others), timeout=120, interval=0.1,
                             what=f'node{others[0]} or node{others[1]} to accept writes')
    promoted = time.monotonic() - t0
    third = next(i for i in others if i != new)
    harness.wait_streaming_from(c.nodes[third], c.nodes[new], timeout=120)
    t1 = time.monotonic()
    r = pgrm('-f', c.confs[primary], '--json', 'node', 'rejoin', '-h', '127.0.0.1',
             '-p', c.nodes[new].port, check=0, timeout=600)
    doc = parse_json(r, 'node rejoin --json')
    harness.wait_streaming_from(c.nodes[primary], c.nodes[new], timeout=120)
    return new, promoted, time.monotonic() - t1, doc['data'].get('method')


def fmt(figure: str, v: int) -> str:
    return f'{v / 1024:.2f} MB' if figure == 'rss_kb' else str(v)


def report(sampler: Sampler, cycles: int) -> list:
    """Prints start/end/max per daemon; returns the problems (growth, deaths)."""
    problems = []
    for i, samples in sorted(sampler.samples.items()):
        if i in sampler.died:
            problems.append(f'node{i}: the daemon died during cycle {sampler.died[i] + 1}')
        if not samples:
            continue
        line = []
        for figure in FIGURES:
            values = [s[figure] for _, s in samples]
            line.append(f'{figure.split("_")[0]} {fmt(figure, values[0])} -> {fmt(figure, values[-1])}'
                        f' (max {fmt(figure, max(values))})')
            # The first cycle after the warm-up against the last one.
            first = [s[figure] for k, s in samples if k == 1]
            last = [s[figure] for k, s in samples if k == cycles - 1]
            if first and last:
                base, top = max(first), max(last)
                if top - base > TOLERANCE[figure](base):
                    problems.append(f'node{i}: {figure} grew from {fmt(figure, base)} (cycle 2) to '
                                    f'{fmt(figure, top)} (cycle {cycles})')
        print(f'  node{i} daemon (pid {sampler.pids[i]}): ' + '; '.join(line), flush=True)
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--minutes', type=float, default=60, help='length of the run (default 60)')
    ap.add_argument('--cycle', type=float, default=5,
                    help='minutes between two failovers, each followed by a rejoin (default 5)')
    ap.add_argument('--sample', type=float, default=10, help='seconds between two samples (default 10)')
    args = ap.parse_args()
    cycles = int(args.minutes // args.cycle)
    if cycles < 3:
        ap.error('--minutes must hold at least three --cycle: a warm-up, and two to compare')
    check_binary()
    started = time.monotonic()
    print(f'# soak: 3 nodes, a repmgrd each ({harness.pgrm_path("repmgrd")}), {cycles} cycles of '
          f'{args.cycle:g} min, each a kill -9 of the primary, a failover and a rejoin; '
          f'samples every {args.sample:g} s', flush=True)
    print(f'# machine: {os.cpu_count()} cores, load average {load_average()}', flush=True)
    problems = []
    with harness.Sandbox(prefix='pgrm-bench-soak-') as sb, harness.daemon_cluster(sb) as c:
        harness.setup_three(c)
        c.nodes[1].psql(AckWriter.create_sql(), db='pgbench')
        writer = AckWriter({f'node{i}': n.port for i, n in c.nodes.items()}, pause=0.05)
        writer.start()
        sampler = Sampler({i: d.pid for i, d in c.daemons.items()}, args.sample)
        sampler.start()
        primary = 1
        first_cycle = time.monotonic()
        try:
            for k in range(cycles):
                sampler.cycle = k
                end = first_cycle + (k + 1) * args.cycle * 60
                try:
                    new, promoted, rejoined, method = failover_and_rejoin(c, primary)
                except (AssertionError, RuntimeError) as e:
                    problems.append(f'cycle {k + 1}: {e}')
                    break
                figures = ', '.join(
                    f'node{i} {fmt("rss_kb", s["rss_kb"])} {s["fds"]} fds {s["threads"]} threads'
                    for i, s in ((i, sample(d.pid)) for i, d in sorted(c.daemons.items())) if s)
                print(f'cycle {k + 1}: node{primary} killed, node{new} accepting writes after '
                      f'{promoted:.1f} s, node{primary} rejoined ({method}) in {rejoined:.1f} s; '
                      f'{figures}', flush=True)
                primary = new
                time.sleep(max(0.0, end - time.monotonic()))
        finally:
            sampler.stop()
            writer.stop()
        print(f'\n== daemons over {(time.monotonic() - first_cycle) / 60:.1f} min '
              f'({len(writer.acks)} rows written, {len(writer.failures)} refused writes)')
        problems += report(sampler, cycles)
    for p in problems:
        print(f'PROBLEM: {p}')
    print(f'\n# total {time.monotonic() - started:.0f} s; {"FAILED" if problems else "ok"}', flush=True)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
