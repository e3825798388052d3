#!/usr/bin/env python3
"""Benchmark: failover with dcs = etcd, beside Patroni 3.0.2 on the same kind of etcd, in
the same run.

    python3 bench/etcd_failover.py [--scale 20] [--runs 3] [--ttl 20] [--timeout 120]

Every run starts a fresh three-member etcd cluster (harness.EtcdCluster, loopback) and
three PostgreSQL nodes with `pgbench -i -s SCALE`, either

  pgrm:    PgrmCluster with failover = automatic, monitor_interval_secs = 1,
           reconnect_attempts = 2, reconnect_interval = 1 (failover.py's settings),
           dcs = etcd, etcd_lease_ttl = TTL; or
  Patroni: PatroniCluster (Debian's patroni) with ttl = TTL (20 is Patroni's least),
           loop_wait = 1, retry_timeout = 3 (the same timers where both have one);

both with synchronous replication (pgrm: synchronous_standby_names = 'ANY 1 (node1,
node2, node3)' on every node; Patroni: synchronous_mode), so that an acknowledged write
is on two nodes. A writer (benchlib.AckWriter) commits rows on whichever node accepts
them, and the fault comes at t0:

  kill:  SIGKILL of the primary's postmaster (its daemon lives on: Patroni restarts the
         server in place, pgrm fails over);
  host:  SIGKILL of the primary's daemon (with everything it started) and postmaster;
  host-on: the same, pgrm alone, with etcd_failover_on_refusal = on (repmgrd(8), "With
         etcd": the candidate revokes the lease of a primary that refuses connections and
         whose repmgrd is silent in etcd); Patroni has no such setting, so its ratio is
         against Patroni's host runs.

Measured: first write = the first acknowledged row after the writer's first failure
after t0; lost = acknowledged rows missing on the node that accepts writes once the
cluster settled (a second after the first write, writer stopped). Prints each run, the
medians per tool and fault, and the ratio pgrm/Patroni (target <= 0.5, zero lost
acknowledged writes). It prints; it never fails on a timing. Root only (etcd, patroni and
PostgreSQL run as the postgres OS user).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (AckWriter, PatroniCluster, PgrmCluster, check_binary, end_process_group,  # noqa: E402
                      harness, load_average, wait_until)

PGRM_SETTINGS = {'failover': 'automatic', 'monitor_interval_secs': 1, 'reconnect_attempts': 2,
                 'reconnect_interval': 1, 'dcs': 'etcd'}
SYNC = "ANY 1 (node1, node2, node3)"
TARGET_RATIO = 0.5


FAULTS = {'kill': ('pgrm', 'patroni'), 'host': ('pgrm', 'patroni'), 'host-on': ('pgrm',)}


def build(tool: str, sb, scale: int, etcd, ttl: int, extra: dict):
    if tool == 'patroni':
        hosts = ','.join(e.split('//', 1)[1] for e in etcd.endpoints.split(','))
        return PatroniCluster(sb, scale, hosts, {'ttl': ttl, 'loop_wait': 1, 'retry_timeout': 3,
                                                 'synchronous_mode': True})
    c = PgrmCluster(sb, scale, {**PGRM_SETTINGS, 'etcd_endpoints': etcd.endpoints, 'etcd_lease_ttl': ttl, **extra})
    for n in c.nodes.values():
        n.psql(f"alter system set synchronous_standby_names = '{SYNC}'")
        n.psql('select pg_reload_conf()')
    return c


def writable(c) -> int | None:
    for i, n in c.nodes.items():
        try:
            if n.psql('select not pg_is_in_recovery()') == 't':
                return i
        except Exception:  # noqa: BLE001 - a node down answers nothing
            pass
    return None


def one_run(tool: str, fault: str, scale: int, ttl: int, timeout: float) -> dict:
    with harness.Sandbox(prefix=f'pgrm-bench-etcd-{tool}-') as sb:
        etcd = harness.EtcdCluster(sb, 3)
        c = build(tool, sb, scale, etcd, ttl, {'etcd_failover_on_refusal': 'on'} if fault == 'host-on' else {})
        try:
            c.nodes[1].psql(AckWriter.create_sql(), db='pgbench')
            writer = AckWriter({i: n.port for i, n in c.nodes.items()})
            writer.start()
            wait_until(lambda: len(writer.acks) > 50, timeout=60, what='the writer to commit')
            pm = c.nodes[1].pid()
            t0 = time.monotonic()
            if fault in ('host', 'host-on'):
                end_process_group(c.daemons[1], term_timeout=None)
            os.kill(pm, signal.SIGKILL)
            first = None
            while time.monotonic() - t0 < timeout:
                failed = [t for _, t, _, _ in writer.failures if t >= t0]
                if failed:
                    after = [(t, node) for _, t, node in writer.acks if t > failed[0]]
                    if after:
                        first = after[0]
                        break
                time.sleep(0.02)
            time.sleep(1)
            writer.stop()
            primary = writable(c)
            lost = None
            if primary is not None:
                present = {int(x) for x in c.nodes[primary].psql('select id from ack', db='pgbench').split()}
                lost = len(writer.lost(present))
            return {'first_write': None if first is None else first[0] - t0,
                    'on': None if first is None else first[1], 'primary': primary, 'lost': lost,
                    'acked': len(writer.acks)}
        finally:
            c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--scale', type=int, default=20, help='pgbench -i scale (default 20, as PEERS.md)')
    ap.add_argument('--runs', type=int, default=3, help='runs per tool and fault (default 3)')
    ap.add_argument('--ttl', type=int, default=20, help="the leader lease's TTL in seconds, both tools "
                    "(default 20, Patroni's least)")
    ap.add_argument('--timeout', type=float, default=120, help='seconds to wait for a first write (default 120)')
    args = ap.parse_args()
    check_binary()
    started = time.monotonic()
    print(f'# etcd failover bench: 3 etcd members, 3 nodes, pgbench -i -s {args.scale}, synchronous '
          f'replication; lease TTL {args.ttl} s; pgrm {PGRM_SETTINGS}; Patroni loop_wait 1, retry_timeout 3',
          flush=True)
    print(f'# machine: {os.cpu_count()} cores, load average {load_average()}', flush=True)
    results: dict = {}
    for k in range(args.runs):
        for fault, tools in FAULTS.items():
            # Alternating which tool goes first, so that the machine's drift hits both.
            for tool in (tools if k % 2 == 0 else tools[::-1]):
                r = one_run(tool, fault, args.scale, args.ttl, args.timeout)
                results.setdefault((tool, fault), []).append(r)
                fw = 'none' if r['first_write'] is None else f'{r["first_write"]:.2f} s on node{r["on"]}'
                print(f'{fault:7} {tool:7} run {k + 1}: first write {fw}; primary then node{r["primary"]}; '
                      f'lost acknowledged writes {r["lost"]} of {r["acked"]}', flush=True)
    print()
    med = {}
    for fault, what in (('kill', 'kill -9 of the primary postmaster'), ('host', 'primary host lost'),
                        ('host-on', 'primary host lost, etcd_failover_on_refusal = on')):
        for tool in FAULTS[fault]:
            rs = results[(tool, fault)]
            ws = [r['first_write'] for r in rs if r['first_write'] is not None]
            lost = sum(r['lost'] or 0 for r in rs)
            m = med[(tool, fault)] = statistics.median(ws) if ws else None
            span = f' (min {min(ws):.2f}, max {max(ws):.2f})' if ws else ''
            print(f'== {what}, {tool}: first write median '
                  f'{"none" if m is None else f"{m:.2f} s"}{span}, '
                  f'{len(rs) - len(ws)} runs without one; lost acknowledged writes {lost}')
        ours, theirs = med[('pgrm', fault)], med[('patroni', 'host' if fault == 'host-on' else fault)]
        if ours is not None and theirs:
            print(f'   ratio pgrm/Patroni: {ours / theirs:.2f} (target <= {TARGET_RATIO})')
    print(f'\n# total {time.monotonic() - started:.0f} s, load average {load_average()}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
