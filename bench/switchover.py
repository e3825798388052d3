#!/usr/bin/env python3
"""Benchmark: planned switchover, pgrm's `standby switchover` (no SSH: the primary's own
repmgrd demotes it) beside repmgr 5's (over SSH), same cluster and load, in the same run.

    python3 bench/switchover.py [--scale 20] [--runs 3] [--clients 2] [--warmup 10]
                                [--timeout 180] [--tools pgrm,repmgr5]

Every run builds a fresh three-node cluster for each tool, so that every switchover starts
from the same state (node1 the primary since initdb, node2 and node3 freshly cloned, the
same data): benchlib.PgrmCluster (repmgrd as root on each node) and benchlib.Repmgr5Cluster
(Debian's postgresql-NN-repmgr, installed first when missing; everything as postgres; SSH
through the sandbox's own sshd on a loopback port). Both tools' daemons get the same
settings: failover=automatic, monitor_interval_secs=1, reconnect_attempts=2,
reconnect_interval=1 (repmgr's in /work/shared/PEERS.md); everything else is each tool's
default. The tools alternate which goes first from one run to the next.

Under `pgbench -n -c CLIENTS` against node1 and an acknowledging writer (benchlib.AckWriter:
one small row after another, autocommit, on whichever node accepts writes; each
acknowledgement recorded with its time), after --warmup seconds (the buffers they dirty are
what the old primary's shutdown checkpoint writes), t0, and on node2:

  pgrm:      repmgr -f repmgr2.conf standby switchover --json
  repmgr 5:  repmgr -f repmgr5-2.conf standby switchover --siblings-follow   (as postgres)

A watcher asks every 20 ms which nodes accept writes (node2 first: once promoted it stays
so, so a node found writable after it means two writable primaries at once) and counts
node2's streaming WAL senders. Measured (+: seconds from t0):

  write unavailability  first failed write -> first write committed on node2 (also shown:
                        the last write acknowledged by node1 -> that first write on node2,
                        which counts a write that hung instead of failing)
  every node streaming  + until node2 accepts writes and pg_stat_replication on it shows two
                          WAL senders streaming (node1 and node3)
  command               the command's wall time (and its exit code)
  shutdown checkpoint   buffers written and seconds, from node1's server log: writes wait
                        for it (repmgr 5 runs a CHECKPOINT before it stops the server)
  lost writes           acknowledged ids missing on the node that accepts writes afterwards

Prints every run, the medians, the ratios pgrm/repmgr 5, and whether pgrm meets the
targets: write unavailability <= 1.0 s and <= 0.5 x repmgr 5's, zero lost acknowledged
writes. It never fails on a timing; it exits 1 when pgrm lost an acknowledged write, let two
nodes accept writes at once, failed, or left a node not streaming from node2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (AckWriter, PgrmCluster, Probe, Repmgr5Cluster, check_binary,  # noqa: E402
                      ensure_repmgr5, harness, load_average, wait_until)

DAEMON_SETTINGS = {'failover': 'automatic', 'monitor_interval_secs': 1,
                   'reconnect_attempts': 2, 'reconnect_interval': 1}
TARGET_UNAVAILABLE = 1.0
TARGET_RATIO = 0.5
TOOLS = {'pgrm': 'pgrm', 'repmgr5': 'repmgr 5'}
OLD, NEW = 'node1', 'node2'


class Watcher(threading.Thread):
    """Every 20 ms: which nodes accept writes, NEW asked first, and once NEW does, how many
    of its WAL senders stream. Times are time.monotonic()."""

    def __init__(self, ports: dict):
        super().__init__(daemon=True)
        self.order = [NEW] + [n for n in ports if n != NEW]
        self.probes = {n: Probe(ports[n]) for n in self.order}
        self.t_streaming: float | None = None
        self.writable_at_once: list = []   # (time, [nodes]) when more than one
        self.writers: set = set()
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            writable = []
            for n in self.order:
                r = self.probes[n].query('select pg_is_in_recovery()')
                if r and r[0][0] == 'f':
                    writable.append(n)
            now = time.monotonic()
            self.writers |= set(writable)
            if len(writable) > 1:
                self.writable_at_once.append((now, writable))
            if self.t_streaming is None and NEW in writable:
                r = self.probes[NEW].query("select count(*) from pg_stat_replication "
                                           "where state = 'streaming'")
                if r and int(r[0][0]) >= len(self.order) - 1:
                    self.t_streaming = time.monotonic()
            time.sleep(0.02)
        for p in self.probes.values():
            p.close()

    def stop(self):
        self._done.set()
        self.join(30)


def roles(c) -> dict:
    """node name -> 'primary', 'standby of nodeN' (streaming), 'standby (not streaming)'
    or 'down'."""
    by_port = {str(n.port): f'node{i}' for i, n in c.nodes.items()}
    out = {}
    for i, n in c.nodes.items():
        try:
            if not n.is_in_recovery():
                out[f'node{i}'] = 'primary'
                continue
            status, _, port = harness.receiver(n).partition('|')
            out[f'node{i}'] = (f'standby of {by_port.get(port, port)}' if status == 'streaming'
                               else 'standby (not streaming)')
        except Exception:  # noqa: BLE001 - a node that does not answer
            out[f'node{i}'] = 'down'
    return out


def shutdown_checkpoint(inst: harness.Instance) -> tuple:
    """(buffers written, seconds) of the last shutdown checkpoint in inst's server log (the
    old primary's: a switchover's writes wait for it), or (None, None)."""
    found, starting = (None, None), False
    for ln in inst.logfile.read_text(errors='replace').splitlines():
        if 'checkpoint starting: shutdown' in ln:
            starting = True
        elif starting and 'checkpoint complete:' in ln:
            m = re.search(r'wrote (\d+) buffers.*total=([0-9.]+) s', ln)
            found, starting = ((int(m.group(1)), float(m.group(2))) if m else (None, None)), False
    return found


def tool_summary(tool: str, proc) -> list:
    """The command's own account, a few lines."""
    if tool == 'pgrm':
        try:
            doc = json.loads(proc.stdout)
            d = doc.get('data', {})
            return [f'pgrm says: {doc.get("summary", "")}'] + (
                [f'  promoted after {d["promoted_after_s"]:.2f} s, old primary replays after '
                 f'{d["old_primary_streams_after_s"]:.2f} s, all streaming after '
                 f'{d["all_streaming_after_s"]:.2f} s'] if 'promoted_after_s' in d else [])
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
            pass
    text = (proc.stdout + proc.stderr).strip().splitlines()
    keep = [ln for ln in text if any(w in ln for w in ('NOTICE', 'ERROR', 'WARNING', 'HINT', 'DETAIL'))]
    return keep[-8:] if proc.returncode == 0 else text[-25:]


def one_run(tool: str, scale: int, clients: int, warmup: float, timeout: float) -> dict:
    with harness.Sandbox(prefix=f'pgrm-bench-switchover-{tool}-') as sb:
        kind = PgrmCluster if tool == 'pgrm' else Repmgr5Cluster
        c = kind(sb, scale, DAEMON_SETTINGS)
        writer = watcher = None
        try:
            c.nodes[1].psql(AckWriter.create_sql(), db='pgbench')
            for i in (2, 3):
                wait_until(lambda i=i: c.nodes[i].psql("select to_regclass('ack') is not null",
                                                       db='pgbench') == 't',
                           what=f'table ack on node{i}')
            ports = {f'node{i}': n.port for i, n in c.nodes.items()}
            c.pgbench('-n', '-c', clients, '-T', 3600)
            writer = AckWriter(ports)
            writer.start()
            watcher = Watcher(ports)
            time.sleep(warmup)
            watcher.start()
            t0 = time.monotonic()
            proc = c.switchover(2, timeout)
            t_cmd = time.monotonic() - t0

            # Bounded: every node streaming from node2, and a write committed there.
            def settled():
                return watcher.t_streaming is not None and any(
                    n == NEW and t > t0 for _, t, n in list(writer.acks))
            deadline = time.monotonic() + timeout
            while not settled() and time.monotonic() < deadline:
                time.sleep(0.05)
            writer.stop()
            watcher.stop()

            acks, fails = list(writer.acks), list(writer.failures)
            first_fail = next((t for _, t, _, _ in fails if t > t0), None)
            since = first_fail if first_fail is not None else t0
            first_new = next((t for _, t, n in acks if n == NEW and t > since), None)
            last_old = next((t for _, t, n in reversed(acks) if n == OLD and t < since), None)
            after = roles(c)
            primaries = [n for n, r in after.items() if r == 'primary']
            lost = None
            if len(primaries) == 1:
                ids = c.nodes[int(primaries[0][4:])].psql('select id from ack', db='pgbench')
                lost = writer.lost({int(x) for x in ids.split()})
            ckpt_buffers, ckpt_s = shutdown_checkpoint(c.nodes[1])
            rel = (lambda t: None if t is None else t - t0)
            return {
                'tool': tool, 'exit': proc.returncode, 'command': t_cmd,
                'first_fail': rel(first_fail), 'first_new': rel(first_new),
                'unavailable': (first_new - first_fail) if first_fail is not None and first_new is not None else None,
                'last_old': rel(last_old),
                'gap': (first_new - last_old) if last_old is not None and first_new is not None else None,
                'streaming': rel(watcher.t_streaming),
                'checkpoint': ckpt_s, 'checkpoint_buffers': ckpt_buffers,
                'acks': len(acks), 'refused': sum(1 for f in fails if f[1] > t0),
                'lost': lost, 'roles': after,
                'at_once': [(round(t - t0, 3), w) for t, w in watcher.writable_at_once],
                'writers': sorted(watcher.writers), 'says': tool_summary(tool, proc),
            }
        finally:
            for th in (writer, watcher):
                if th is not None and th.is_alive():
                    th.stop()
            c.close()


def fmt(v, unit: str = ' s') -> str:
    return 'n/a' if v is None else f'{v:.2f}{unit}'


def failed(r: dict) -> list:
    """What went wrong in a run (correctness, not timing)."""
    out = []
    if r['exit'] != 0:
        out.append(f'command exit code {r["exit"]}')
    if r['lost'] is None:
        out.append(f'no single primary afterwards: {r["roles"]}')
    elif r['lost']:
        out.append(f'{len(r["lost"])} acknowledged writes lost (ids {r["lost"][:10]}...)')
    if r['at_once']:
        out.append(f'two writable nodes at once: {r["at_once"][:3]}')
    if r['roles'].get(NEW) != 'primary' or any(
            v != f'standby of {NEW}' for n, v in r['roles'].items() if n != NEW):
        out.append(f'roles afterwards {r["roles"]}')
    return out


def print_run(k: int, r: dict):
    name = TOOLS[r['tool']]
    print(f'{name:8} run {k}: write unavailability {fmt(r["unavailable"])} '
          f'(last write on {OLD} +{fmt(r["last_old"])}, first failed write +{fmt(r["first_fail"])}, '
          f'first write on {NEW} +{fmt(r["first_new"])}); '
          f'{OLD}\'s shutdown checkpoint {r["checkpoint_buffers"]} buffers in {fmt(r["checkpoint"])}; '
          f'every node streaming from {NEW} +{fmt(r["streaming"])}; command {fmt(r["command"])} '
          f'(exit {r["exit"]}); {r["acks"]} writes acknowledged, '
          f'lost {"?" if r["lost"] is None else len(r["lost"])}', flush=True)
    for ln in r['says']:
        print(f'    {ln}')
    for problem in failed(r):
        print(f'    PROBLEM: {problem}', flush=True)


def med(runs: list, key: str):
    vals = [r[key] for r in runs if r[key] is not None]
    return statistics.median(vals) if vals else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--scale', type=int, default=20, help='pgbench -i scale (default 20, as PEERS.md)')
    ap.add_argument('--runs', type=int, default=3, help='switchovers per tool, at least 3 for a median (default 3)')
    ap.add_argument('--clients', type=int, default=2, help='pgbench -c during the switchover (default 2)')
    ap.add_argument('--warmup', type=float, default=10,
                    help='seconds of load before t0, dirtying buffers the shutdown checkpoint writes (default 10)')
    ap.add_argument('--timeout', type=float, default=180,
                    help='seconds a switchover may take, and then to settle (default 180)')
    ap.add_argument('--tools', default='pgrm,repmgr5', help='which tools (default pgrm,repmgr5)')
    args = ap.parse_args()
    tools = args.tools.split(',')
    if args.runs < 1 or any(t not in TOOLS for t in tools):
        ap.error('--runs must be at least 1; --tools a comma-separated subset of pgrm,repmgr5')
    check_binary()
    version = ensure_repmgr5() if 'repmgr5' in tools else None
    started = time.monotonic()
    print(f'# switchover bench: 3 nodes on loopback, pgbench -i -s {args.scale}, load pgbench -c '
          f'{args.clients} + an acknowledging writer; daemons: '
          + ', '.join(f'{k}={v}' for k, v in DAEMON_SETTINGS.items())
          + f'; a fresh cluster for every switchover; {version or "repmgr 5 not run"}', flush=True)
    print(f'# machine: {os.cpu_count()} cores, load average {load_average()} at start', flush=True)

    results = {t: [] for t in tools}
    for k in range(args.runs):
        for tool in (tools if k % 2 == 0 else list(reversed(tools))):
            r = one_run(tool, args.scale, args.clients, args.warmup, args.timeout)
            results[tool].append(r)
            print_run(k + 1, r)

    print(f'\n== medians over {args.runs} runs (seconds from the command\'s start, +)')
    keys = (('write unavailability', 'unavailable'), (f'last write on {OLD} -> first on {NEW}', 'gap'),
            (f'{OLD}\'s shutdown checkpoint', 'checkpoint'), ('first failed write +', 'first_fail'),
            (f'first write on {NEW} +', 'first_new'), ('every node streaming +', 'streaming'),
            ('command wall time', 'command'))
    print(f'  {"":38}' + ''.join(f'{TOOLS[t]:>10}' for t in tools)
          + ('   pgrm/repmgr 5' if len(tools) == 2 else ''))
    for label, key in keys:
        ms = [med(results[t], key) for t in tools]
        line = f'  {label:38}' + ''.join(f'{fmt(m, ""):>10}' for m in ms)
        if len(tools) == 2:
            line += f'   {ms[0] / ms[1]:.2f}' if ms[0] is not None and ms[1] else '   n/a'
        print(line)
    lost = {t: sum(len(r['lost'] or []) for r in results[t]) for t in tools}
    print(f'  {"lost acknowledged writes":38}' + ''.join(f'{lost[t]:>10}' for t in tools))

    problems = {t: [p for r in results[t] for p in failed(r)] for t in tools}
    for t in tools:
        if problems[t]:
            print(f'  {TOOLS[t]}: {len(problems[t])} problem(s) in its runs, see above')
    if 'pgrm' in tools:
        mu = med(results['pgrm'], 'unavailable')
        print('\n== targets (pgrm)')
        print(f'  write unavailability <= {TARGET_UNAVAILABLE:.1f} s: median {fmt(mu)}: '
              + ('n/a' if mu is None else 'met' if mu <= TARGET_UNAVAILABLE else 'NOT met'))
        if 'repmgr5' in tools:
            mr = med(results['repmgr5'], 'unavailable')
            ratio = mu / mr if mu is not None and mr else None
            print(f'  write unavailability <= {TARGET_RATIO} x repmgr 5\'s ({fmt(mr)}): ratio '
                  f'{fmt(ratio, "")}: ' + ('n/a' if ratio is None else 'met' if ratio <= TARGET_RATIO
                                           else 'NOT met'))
        print(f'  zero lost acknowledged writes: {lost["pgrm"]} lost: '
              + ('met' if lost['pgrm'] == 0 and all(r['lost'] is not None for r in results['pgrm'])
                 else 'NOT met'))
    print(f'\n# machine: load average {load_average()} at the end; total {time.monotonic() - started:.0f} s',
          flush=True)
    return 1 if 'pgrm' in tools and problems['pgrm'] else 0


if __name__ == '__main__':
    sys.exit(main())
