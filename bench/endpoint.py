#!/usr/bin/env python3
"""Benchmark: repmgrd's HTTP endpoint (http_listen): answer latency beside `psql -c
'select 1'`, and the daemon's footprint with the endpoint on against off.

    python3 bench/endpoint.py [--requests 1000] [--idle 30]

A three-node cluster (benchlib.PgrmCluster, failover = automatic, monitor_interval_secs=1,
reconnect_attempts=2, reconnect_interval=1). First, with no endpoint, --idle seconds of
each daemon's VmRSS and CPU time; then every daemon restarted with http_listen, the same
again (no requests meanwhile); then, while the daemons monitor, --requests sequential
requests to node1's /primary and /metrics, each on a new connection (as a load balancer
checks), and as many `psql -X -c 'select 1'` runs against node1. Prints median and p99
of each, the ratios endpoint/psql, and the targets (p99 <= 5 ms, RSS growth <= 1 MB); it
never fails on a figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import http.client

from benchlib import PgrmCluster, check_binary, harness, load_average, median, pg_bin, run_as_pg

SETTINGS = {'failover': 'automatic', 'monitor_interval_secs': 1, 'reconnect_attempts': 2, 'reconnect_interval': 1}


def p99(values: list) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def footprint(pids: dict, seconds: float) -> dict:
    """{node: (VmRSS kB at the end, CPU % of one core over seconds)}."""
    tick = os.sysconf('SC_CLK_TCK')

    def cpu(pid):
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return int(fields[11]) + int(fields[12])

    start = {i: cpu(p) for i, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    out = {}
    for i, p in pids.items():
        with open(f'/proc/{p}/status') as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith('VmRSS:'))
        out[i] = (rss, 100.0 * (cpu(p) - start[i]) / tick / elapsed)
    return out


def restart_daemons(c: PgrmCluster, ports: dict):
    """Every daemon stopped, http_listen added to its repmgr.conf, started again."""
    for i in (1, 2, 3):
        harness.end_process_group(c.daemons[i])
        with open(c.confs[i], 'a') as f:
            f.write(f"http_listen='127.0.0.1:{ports[i]}'\n")
        out = open(c.sb.path(f'repmgrd{i}.out'), 'ab')
        c.daemons[i] = subprocess.Popen([str(harness.pgrm_path('repmgrd')), '-f', str(c.confs[i])],
                                        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=harness.clean_env(), cwd=str(c.sb.root), start_new_session=True)
        out.close()


def timed_requests(port: int, path: str, n: int) -> list:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
        conn.request('GET', path)
        r = conn.getresponse()
        r.read()
        conn.close()
        times.append(time.perf_counter() - t)
        assert r.status in (200, 503), r.status
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--requests', type=int, default=1000, help='requests per path, and psql runs (default 1000)')
    ap.add_argument('--idle', type=float, default=30, help='seconds of footprint, off and on (default 30)')
    args = ap.parse_args()
    check_binary()
    print(f'# machine: {os.cpu_count()} cores, load average {load_average()}', flush=True)
    with harness.Sandbox(prefix='pgrm-bench-http-') as sb:
        c = PgrmCluster(sb, 1, SETTINGS)
        sb.on_cleanup(c.close)
        try:
            off = footprint({i: c.daemons[i].pid for i in (1, 2, 3)}, args.idle)
            ports = {i: harness.free_port() for i in (1, 2, 3)}
            restart_daemons(c, ports)
            harness.wait_until(lambda: harness.http_status(ports[1], '/primary') == 200, timeout=60,
                               what="node1's /primary to answer 200")
            harness.wait_until(lambda: all(harness.http_status(ports[i], '/replica') == 200 for i in (2, 3)), timeout=60,
                               what='the standbys to answer /replica 200')
            on = footprint({i: c.daemons[i].pid for i in (1, 2, 3)}, args.idle)

            primary = timed_requests(ports[1], '/primary', args.requests)
            metrics = timed_requests(ports[1], '/metrics', args.requests)
            psql = []
            argv = [pg_bin('psql'), '-X', '-Aqt', '-h', '127.0.0.1', '-p', str(c.nodes[1].port), '-U', 'postgres',
                    '-d', 'pgbench', '-c', 'select 1']
            for _ in range(args.requests):
                t = time.perf_counter()
                run_as_pg(argv)
                psql.append(time.perf_counter() - t)
        finally:
            c.close()

    ms = lambda s: f'{s * 1000:.2f} ms'  # noqa: E731
    print(f'\n{args.requests} requests each, one connection per request, while the daemons monitor:')
    for name, times in (('GET /primary', primary), ('GET /metrics', metrics), ("psql -c 'select 1'", psql)):
        print(f'  {name:20s} median {ms(median(times))}  p99 {ms(p99(times))}')
    for name, times in (('/primary', primary), ('/metrics', metrics)):
        print(f'  ratio {name}/psql: median {median(times) / median(psql):.3f}, p99 {p99(times) / p99(psql):.3f}; '
              f'p99 {ms(p99(times))} (target <= 5 ms): {"met" if p99(times) <= 0.005 else "not met"}')
    print(f'\nfootprint over {args.idle:.0f} s idle, endpoint off -> on (VmRSS, CPU % of one core):')
    for i in (1, 2, 3):
        grow = (on[i][0] - off[i][0]) / 1024
        print(f'  node{i}: VmRSS {off[i][0] / 1024:.2f} MB -> {on[i][0] / 1024:.2f} MB '
              f'({grow:+.2f} MB, target <= 1 MB: {"met" if grow <= 1 else "not met"}); '
              f'CPU {off[i][1]:.3f} % -> {on[i][1]:.3f} %')
    return 0



if __name__ == '__main__':
    sys.exit(main())
