#!/usr/bin/env python3
"""Benchmark: the primary's repmgrd, CPU time per monitoring pass with 3, 10 and 50
registered nodes; its cost must grow at most linearly with the nodes.

    python3 bench/many.py [--passes 30] [--sizes 3,10,50]

One primary and two real standbys (lightweight servers: shared_buffers = 16MB), cloned and
registered. For each size N, the metadata is given nodes 4..N as registered standbys whose
conninfos point, in turn, at the two real standbys (each row its own application_name): to
the primary's daemon each row is a standby that answers, over a connection of its own kept
between passes, the same two queries per pass as a node on a host of its own would, which
is all a pass spends on another node (plugins/daemon/monitor.cpp, probe_nodes). Real servers
for all 49 would measure the machine's memory, not the daemon. Then node1's repmgrd is
started afresh (failover = automatic, monitor_interval_secs = 1, not --verbose, as in
production), and after --warmup passes its CPU time (utime + stime of /proc/<pid>/stat: all
its threads, those that ended included) is read over --passes passes, counted by its
pgrm_passes_total (/metrics). Prints CPU ms per pass at each size, and the ratios 10/3 and
50/3 beside the ratios of nodes and of other nodes; it never fails on a figure.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import sys
import time

from benchlib import check_binary, harness, load_average

LIGHT = {'shared_buffers': '16MB', 'max_connections': 60}


def passes(port: int) -> int | None:
    """pgrm_passes_total from node1's /metrics; None while it does not answer."""
    try:
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
        conn.request('GET', '/metrics')
        body = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return None
    m = re.search(r'^pgrm_passes_total(?:\{[^}]*\})? (\S+)$', body, re.M)
    return int(float(m.group(1))) if m else None


def cpu_ticks(pid: int) -> int:
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def register_rows(c: harness.Cluster, size: int):
    """Nodes 4..size, standbys of node1 pointing at node2 and node3 in turn."""
    n1 = c.nodes[1]
    n1.psql('delete from repmgr_test.repl_nodes where id > 3', db='pgbench')
    if size <= 3:
        return
    values = ', '.join(
        f"({i}, 'test', 'node{i}', 'host=127.0.0.1 port={c.nodes[2 + i % 2].port} user=postgres "
        f"dbname=pgbench application_name=node{i}', 'standby', 1)" for i in range(4, size + 1))
    n1.psql('insert into repmgr_test.repl_nodes (id, cluster, name, conninfo, type, upstream_node_id) '
            f'values {values}', db='pgbench')


def measure(sb: harness.Sandbox, c: harness.Cluster, size: int, warmup: int, count: int) -> dict:
    register_rows(c, size)
    port = harness.free_port()
    conf = harness.write_daemon_conf(sb, 1, c.nodes[1], name=f'repmgrd1-{size}',
                                     log_file=sb.path(f'repmgrd1-{size}.log'),
                                     http_listen=f'127.0.0.1:{port}')
    d = harness.Daemon(sb, f'node1-{size}', conf, verbose=False)
    try:
        harness.wait_until(lambda: (passes(port) or 0) >= warmup, timeout=60,
                           what=f'{warmup} passes of node1\'s repmgrd with {size} nodes')
        p0, t0, w0 = passes(port), cpu_ticks(d.pid), time.monotonic()
        harness.wait_until(lambda: (passes(port) or 0) >= p0 + count, timeout=count * 5 + 30, interval=2,
                           what=f'{count} more passes')
        p1, t1, w1 = passes(port), cpu_ticks(d.pid), time.monotonic()
        visible = re.search(r'^pgrm_state\{[^}]*state="primary"[^}]*\} 1', open_metrics(port), re.M)
    finally:
        d.stop()
    tick = os.sysconf('SC_CLK_TCK')
    return {'size': size, 'passes': p1 - p0, 'cpu_ms': 1000.0 * (t1 - t0) / tick / (p1 - p0),
            'wall_s': (w1 - w0) / (p1 - p0), 'primary': bool(visible)}


def open_metrics(port: int) -> str:
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
    conn.request('GET', '/metrics')
    body = conn.getresponse().read().decode()
    conn.close()
    return body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--passes', type=int, default=30, help='passes measured at each size')
    ap.add_argument('--warmup', type=int, default=5, help='passes before measuring')
    ap.add_argument('--sizes', default='3,10,50', help='registered nodes, comma-separated, the first the base')
    args = ap.parse_args()
    check_binary()
    sizes = [int(s) for s in args.sizes.split(',')]
    print(f'load average before: {load_average()}')
    with harness.Sandbox('pgrm-bench-many-') as sb:
        c = harness.small_cluster(sb, standbys=2, extra_conf=LIGHT)
        results = [measure(sb, c, n, args.warmup, args.passes) for n in sizes]
    print(f'load average after: {load_average()}')
    base = results[0]
    print(f'{"nodes":>5} {"passes":>6} {"CPU ms/pass":>11} {"wall s/pass":>11} {"CPU ratio":>9} '
          f'{"node ratio":>10} {"other-node ratio":>16}')
    for r in results:
        print(f'{r["size"]:>5} {r["passes"]:>6} {r["cpu_ms"]:>11.2f} {r["wall_s"]:>11.2f} '
              f'{r["cpu_ms"] / base["cpu_ms"]:>9.2f} {r["size"] / base["size"]:>10.2f} '
              f'{(r["size"] - 1) / (base["size"] - 1):>16.2f}' + ('' if r['primary'] else '  (not primary!)'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
