#!/usr/bin/env python3
"""Benchmark: automatic failover by the daemon (repmgrd), and its footprint.

    python3 bench/failover.py [--scale 20] [--runs 3] [--stop-runs 3] [--idle 60]

Every run builds a fresh cluster: node1 gets `pgbench -i -s SCALE` and `master register`;
node2 and node3 are cloned with `repmgr -f confN ... standby clone` (application_name =
node name), started and registered; a daemon runs on each node, in the foreground as
root, with failover=automatic, monitor_interval_secs=1, reconnect_attempts=2,
reconnect_interval=1 (repmgr's settings in /work/shared/PEERS.md). Under `pgbench -c 2`
against node1, the fault is injected at t0:

  kill:  SIGKILL of node1's postmaster;
  stop:  SIGSTOP of node1's postmaster and every process it forked (a frozen primary:
         its port accepts connections but never answers).

A probe keeps one connection to each standby (a minimal libpq-free client speaking the
frontend/backend protocol, so a probe costs a round trip, not a psql start) and every
20 ms tries `INSERT INTO failover_probe` on both, and reads pg_stat_wal_receiver on both.
Measured from t0: the first INSERT that commits (on the new primary), and the moment the
other standby's WAL receiver is `streaming` with sender_port = the new primary's port.

Then the footprint, on a fresh idle cluster (no load): each daemon's VmRSS / VmHWM from
/proc/<pid>/status, and its CPU time (utime+stime from /proc/<pid>/stat) over --idle
seconds of monitoring, as a percentage of one core; beside it, as a baseline from the
same run, the RSS of an idle psql holding one connection (the libpq floor).

Prints every run, the medians, and their ratios to the targets (first write <= 1.0 s,
every standby streaming <= 2.0 s; frozen primary: <= promote_after + 2 s, the hold of fence
before promote; daemon RSS <= 5 MB) and to repmgr 5.3.3's figures from PEERS.md. It prints; it never fails on a
timing.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (PgrmCluster, Probe, check_binary, freeze, harness, load_average,  # noqa: E402
                      thaw)

MONITOR_INTERVAL = 1
RECONNECT_ATTEMPTS = 2
RECONNECT_INTERVAL = 1
# What a benchmarked node's repmgr.conf adds: automatic failover and the fast timings above.
DAEMON_SETTINGS = {'failover': 'automatic', 'monitor_interval_secs': MONITOR_INTERVAL,
                   'reconnect_attempts': RECONNECT_ATTEMPTS, 'reconnect_interval': RECONNECT_INTERVAL}

TARGET_WRITE = 1.0
TARGET_STREAM = 2.0
# A frozen primary is lost by timeout, not refused: it may live behind a partition, so the
# candidate holds its promotion until the primary has fenced itself (repmgrd(8), FENCE
# BEFORE PROMOTE): promote_after of repmgr.conf(5) for the settings above, 12025 ms
# (test/unit/test_timeouts.cpp), measured from the first failed check.
PROMOTE_AFTER = 12.025
TARGET_STOP = PROMOTE_AFTER + 2.0
TARGET_RSS_KB = 5 * 1024
PEER_REPMGR_WRITE = 1.61   # repmgr 5.3.3, kill -9, median (PEERS.md)
PEER_REPMGR_STREAM = 2.61
PEER_REPMGRD_RSS_KB = 4.1 * 1024
PEER_REPMGRD_CPU_PCT = (0.05, 0.10)


# --------------------------------------------------------------------------------------
# One failover


def one_run(scale: int, fault: str, timeout: float) -> dict:
    with harness.Sandbox(prefix='pgrm-bench-failover-') as sb:
        c = PgrmCluster(sb, scale, DAEMON_SETTINGS)
        c.nodes[1].psql('create table failover_probe(t timestamptz default now(), node text)',
                        db='pgbench')
        frozen: list = []
        probes = {i: Probe(c.nodes[i].port) for i in (2, 3)}
        watch = {i: Probe(c.nodes[i].port) for i in (2, 3)}
        try:
            c.pgbench('-n', '-c', '2', '-T', '3600')
            time.sleep(3)
            for p in list(probes.values()) + list(watch.values()):
                p.query('select 1')
            n1 = c.nodes[1]
            pm = n1.pid()
            t0 = time.monotonic()
            if fault == 'kill':
                os.kill(pm, signal.SIGKILL)
            else:
                frozen = freeze(pm)
            t_write: dict = {}
            t_stream: dict = {}
            writers_seen = set()
            while time.monotonic() - t0 < timeout:
                for i in (2, 3):
                    if i not in t_write and probes[i].query(
                            f"insert into failover_probe(node) values ('node{i}')") is not None:
                        t_write[i] = time.monotonic() - t0
                    other = 5 - i
                    if i not in t_stream:
                        r = watch[i].query('select status, sender_port from pg_stat_wal_receiver')
                        if r and r[0][0] == 'streaming' and r[0][1] == str(c.nodes[other].port):
                            t_stream[i] = time.monotonic() - t0
                writers_seen |= set(t_write)
                if len(t_write) >= 1:
                    new = min(t_write, key=t_write.get)
                    if (5 - new) in t_stream:
                        break
                time.sleep(0.02)
            result = {'fault': fault}
            if t_write:
                new = min(t_write, key=t_write.get)
                result.update(new=new, first_write=t_write[new], all_streaming=t_stream.get(5 - new),
                              writers=sorted(writers_seen))
            else:
                result.update(new=None, first_write=None, all_streaming=None, writers=[])
            # How the daemons saw it (for the record).
            lines = []
            for i in (2, 3):
                for ln in sb.path(f'repmgrd{i}.log').read_text(errors='replace').splitlines():
                    if any(w in ln for w in ('is lost', 'failover:', 'promote', 'follow', 'ERROR')):
                        lines.append(f'node{i} {ln}')
            result['log'] = lines if len(lines) <= 10 else (
                lines[:6] + [f'... ({len(lines) - 9} similar lines)'] + lines[-3:])
            return result
        finally:
            for p in list(probes.values()) + list(watch.values()):
                p.close()
            if frozen:
                for pid in frozen:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                thaw(frozen)
            c.close()


def footprint(scale: int, idle: int) -> dict:
    tick = os.sysconf('SC_CLK_TCK')

    def cpu_ticks(pid):
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    def status(pid):
        out = {}
        with open(f'/proc/{pid}/status') as f:
            for ln in f:
                k, _, v = ln.partition(':')
                if k in ('VmRSS', 'VmHWM', 'RssAnon', 'RssFile'):
                    out[k] = int(v.split()[0])
        return out

    with harness.Sandbox(prefix='pgrm-bench-footprint-') as sb:
        c = PgrmCluster(sb, scale, DAEMON_SETTINGS)
        try:
            time.sleep(3)
            pids = {i: p.pid for i, p in c.daemons.items()}
            start = {i: cpu_ticks(pid) for i, pid in pids.items()}
            t0 = time.monotonic()
            # The floor any libpq client pays here, measured now beside the daemons: an
            # idle psql holding one connection (the same libpq, libc, libcrypto, gnutls).
            psql = subprocess.Popen(
                [harness.pg_bin('psql'), '-X', '-h', '127.0.0.1', '-p', str(c.nodes[2].port),
                 '-U', 'postgres', '-d', 'pgbench'],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=harness.clean_env())
            psql.stdin.write(b'select 1;\n')
            psql.stdin.flush()
            time.sleep(idle)
            elapsed = time.monotonic() - t0
            res = {'psql': status(psql.pid)}
            psql.stdin.close()
            psql.wait(10)
            for i, pid in pids.items():
                used = (cpu_ticks(pid) - start[i]) / tick
                st = status(pid)
                res[i] = {'rss_kb': st.get('VmRSS'), 'hwm_kb': st.get('VmHWM'),
                          'anon_kb': st.get('RssAnon'), 'file_kb': st.get('RssFile'),
                          'cpu_s': used, 'cpu_pct': 100.0 * used / elapsed, 'elapsed': elapsed}
            res['monitor_rows'] = c.nodes[1].psql('select count(*) from repmgr_bench.repl_monitor',
                                                  db='pgbench')
            return res
        finally:
            c.close()


# --------------------------------------------------------------------------------------


def fmt(v) -> str:
    return '   n/a' if v is None else f'{v:6.2f}'


def summarize(name: str, runs: list, target_write: float, target_stream: float | None):
    writes = [r['first_write'] for r in runs if r['first_write'] is not None]
    streams = [r['all_streaming'] for r in runs if r['all_streaming'] is not None]
    failed = len(runs) - len(streams)
    print(f'\n== {name}: medians over {len(runs)} runs'
          + (f' ({failed} without a complete failover within the timeout)' if failed else ''))
    if writes:
        mw = statistics.median(writes)
        print(f'  first write accepted   median {mw:.2f} s  (min {min(writes):.2f}, max {max(writes):.2f})'
              f'  target <= {target_write:.1f} s  ratio {mw / target_write:.2f}'
              + (f'  vs repmgr 5.3.3 {PEER_REPMGR_WRITE:.2f} s: ratio {mw / PEER_REPMGR_WRITE:.2f}'
                 if name.startswith('kill') else ''))
    else:
        print('  first write accepted   none')
    if streams:
        ms = statistics.median(streams)
        t = target_stream if target_stream is not None else target_write
        print(f'  every standby streaming median {ms:.2f} s  (min {min(streams):.2f}, max {max(streams):.2f})'
              f'  target <= {t:.1f} s  ratio {ms / t:.2f}'
              + (f'  vs repmgr 5.3.3 {PEER_REPMGR_STREAM:.2f} s: ratio {ms / PEER_REPMGR_STREAM:.2f}'
                 if name.startswith('kill') else ''))
    else:
        print('  every standby streaming none')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--scale', type=int, default=20, help='pgbench -i scale (default 20, as PEERS.md)')
    ap.add_argument('--runs', type=int, default=3, help='kill -9 runs (default 3)')
    ap.add_argument('--stop-runs', type=int, default=3, help='SIGSTOP runs (default 3)')
    ap.add_argument('--idle', type=int, default=60, help='seconds of idle CPU measurement (default 60)')
    ap.add_argument('--timeout', type=float, default=120, help='seconds to wait for a failover (default 120)')
    args = ap.parse_args()
    check_binary()
    started = time.monotonic()
    print(f'# failover bench: 3 nodes, pgbench -i -s {args.scale}, load pgbench -c 2; daemons with '
          f'monitor_interval_secs={MONITOR_INTERVAL}, reconnect_attempts={RECONNECT_ATTEMPTS}, '
          f'reconnect_interval={RECONNECT_INTERVAL}, failover=automatic', flush=True)
    print(f'# machine: {os.cpu_count()} cores, load average {load_average()}', flush=True)

    results = {'kill': [], 'stop': []}
    for fault, n in (('kill', args.runs), ('stop', args.stop_runs)):
        for k in range(n):
            r = one_run(args.scale, fault, args.timeout)
            results[fault].append(r)
            print(f'{fault:4} run {k + 1}: new primary node{r["new"]}, first write {fmt(r["first_write"])} s, '
                  f'other standby streaming from it {fmt(r["all_streaming"])} s'
                  + (f'  (nodes that accepted writes: {r["writers"]})' if len(r['writers']) != 1 else ''),
                  flush=True)
            for ln in r['log']:
                print(f'    {ln}')

    summarize('kill -9 of the primary postmaster', results['kill'], TARGET_WRITE, TARGET_STREAM)
    summarize('SIGSTOP of the primary (frozen)', results['stop'], TARGET_STOP, TARGET_STOP)

    fp = footprint(args.scale, args.idle)
    print(f'\n== daemon footprint, idle cluster, {fp[1]["elapsed"]:.0f} s of monitoring '
          f'({fp["monitor_rows"]} repl_monitor rows written)')
    for i, role in ((1, 'primary'), (2, 'standby'), (3, 'standby')):
        f = fp[i]
        print(f'  node{i} ({role}): VmRSS {f["rss_kb"] / 1024:.2f} MB (peak VmHWM {f["hwm_kb"] / 1024:.2f} MB)'
              f' [anon {f["anon_kb"] / 1024:.2f} MB, file-backed {f["file_kb"] / 1024:.2f} MB]'
              f'  target <= 5 MB ratio {f["rss_kb"] / TARGET_RSS_KB:.2f}'
              f'  vs repmgrd {PEER_REPMGRD_RSS_KB / 1024:.1f} MB ratio {f["rss_kb"] / PEER_REPMGRD_RSS_KB:.2f};'
              f'  CPU {f["cpu_s"]:.2f} s = {f["cpu_pct"]:.3f} % of one core'
              f' (repmgrd {PEER_REPMGRD_CPU_PCT[0]}-{PEER_REPMGRD_CPU_PCT[1]} %)')
    floor = fp['psql']
    print(f'  baseline, same run: an idle psql holding one connection: VmRSS {floor["VmRSS"] / 1024:.2f} MB'
          f' [anon {floor["RssAnon"] / 1024:.2f} MB, file-backed {floor["RssFile"] / 1024:.2f} MB];'
          f' daemon/psql RSS ratio: '
          + ', '.join(f'node{i} {fp[i]["rss_kb"] / floor["VmRSS"]:.2f}' for i in (1, 2, 3)))
    print(f'\n# total {time.monotonic() - started:.0f} s', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
