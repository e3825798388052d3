#!/usr/bin/env python3
"""End to end: repmgrd's HTTP endpoint (http_listen) on three nodes and their daemons.

  1. Patroni's paths and codes follow the roles: /primary (/master, /read-write) 200
     only on the primary, /replica only on the streaming standbys, /read-only, /health
     and /liveness everywhere; GET, HEAD (no body) and OPTIONS alike; 405 with Allow for
     other methods, 404 for other paths;
  2. /replica?lag=: a standby whose replay is paused (pg_wal_replay_pause()) while the
     primary writes answers 503 beyond the lag, 200 again once it replays; a bad lag is
     400;
  3. abuse: a 1 MB header is answered 431 at once, garbage 400, a slowloris client is
     cut off after http_head, and with 500 idle connections held a fresh client still
     gets its answer while the monitoring goes on (rows keep coming, /liveness 200) and
     the daemon holds at most 256 of them;
  4. a frozen server (SIGSTOP of a standby's postmaster and its children) never
     freezes its endpoint: /liveness answers throughout, /health turns 503 once the
     daemon's pass times out, and 200 again after SIGCONT; another node's /cluster,
     slowed by the frozen node, answers within the HTTP probe timeouts while that
     node's health paths answer at once;
  5. /cluster is cluster show --json's document, /node node status --json's (with the
     daemon's own state); a flood of them costs one computation per http_reuse;
  6. /metrics passes promtool check metrics (Debian's prometheus), and its values
     agree with cluster show --json and node status --json;
  7. an http_listen that is not host:port, or an address in use, stops the daemon at
     its start with a one-line error; SIGHUP keeps the listener it has.

One cluster (harness.setup_three, failover = automatic, harness.DAEMON_FAST timings)
serves every case.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import DaemonCluster, pgrm, setup_three, stays_false, wait_until  # noqa: E402

_shared: DaemonCluster | None = None
PORTS: dict = {}  # node id -> HTTP port


def cluster() -> DaemonCluster:
    """The three nodes with their daemons, each with an HTTP endpoint; made once."""
    global _shared
    if _shared is None:
        sb = harness.Sandbox()
        c = DaemonCluster(sb)
        sb.on_cleanup(c.close)
        for i in (1, 2, 3):
            PORTS[i] = harness.free_port()
        setup_three(c, node_settings={i: {'http_listen': f'127.0.0.1:{PORTS[i]}'} for i in (1, 2, 3)},
                    extra_conf={'log_connections': 'on'})
        _shared = c
    return _shared


@contextlib.contextmanager
def logs_on_failure(c: DaemonCluster):
    try:
        yield
    except BaseException:
        c.dump()
        raise


def request(node: int, path: str, method: str = 'GET', timeout: float = 5) -> tuple:
    """(status, body bytes, headers) of one request to node's endpoint."""
    conn = http.client.HTTPConnection('127.0.0.1', PORTS[node], timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        conn.close()


def status(node: int, path: str, method: str = 'GET') -> int:
    return request(node, path, method)[0]


def raw(node: int, data: bytes, timeout: float = 10) -> bytes:
    """Sends data on a fresh connection; returns all the server answers until it closes."""
    with socket.create_connection(('127.0.0.1', PORTS[node]), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b''
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def monitoring_rows(c: DaemonCluster, node: int) -> int:
    return int(c.nodes[1].psql(f'select count(*) from repmgr_test.repl_monitor where standby_node = {node}',
                               db='pgbench'))


def test_paths_follow_the_roles():
    c = cluster()
    with logs_on_failure(c):
        for path in ('/primary', '/master', '/read-write'):
            assert [status(i, path) for i in (1, 2, 3)] == [200, 503, 503], path
        wait_until(lambda: [status(i, '/replica') for i in (1, 2, 3)] == [503, 200, 200],
                   what='the standbys to answer /replica 200')
        for path in ('/read-only', '/health', '/liveness'):
            assert [status(i, path) for i in (1, 2, 3)] == [200, 200, 200], path
        code, body, _ = request(1, '/primary')
        doc = json.loads(body)
        assert doc['state'] == 'primary' and doc['role'] == 'primary' and doc['read_only'] is False, doc
        doc = json.loads(request(2, '/replica')[1])
        assert doc['state'] == 'standby' and doc['role'] == 'standby' and doc['lag_bytes'] is not None, doc
        # HAProxy's httpchk sends OPTIONS; HEAD has no body.
        assert status(1, '/primary', 'OPTIONS') == 200 and status(2, '/primary', 'OPTIONS') == 503
        code, body, headers = request(1, '/primary', 'HEAD')
        assert code == 200 and body == b'', (code, body)
        for method in ('POST', 'PUT', 'DELETE'):
            code, body, headers = request(1, '/primary', method)
            assert code == 405 and headers.get('Allow') == 'GET, HEAD, OPTIONS', (method, code, headers)
        for path in ('/', '/nope', '/primary/x'):
            assert status(1, path) == 404, path


def test_replica_lag_in_replay():
    c = cluster()
    n1, n3 = c.nodes[1], c.nodes[3]
    with logs_on_failure(c):
        assert status(3, '/replica?lag=16mb') == 400
        assert status(3, '/replica?lag=x') == 400
        wait_until(lambda: status(3, '/replica?lag=1MB') == 200, what='node3 within 1 MB')
        n3.psql('select pg_wal_replay_pause()')
        try:
            n1.psql('create table if not exists lagged(x text)', db='pgbench')
            # About 4 MB of WAL that node3 receives but does not replay.
            n1.psql("insert into lagged select repeat('x', 1000) from generate_series(1, 4000)", db='pgbench')
            wait_until(lambda: status(3, '/replica?lag=1MB') == 503, timeout=20,
                       what='node3 to answer 503 beyond 1 MB of lag')
            assert status(3, '/replica') == 200, 'still a streaming standby without a lag limit'
            assert status(3, '/replica?lag=1GB') == 200
            wait_until(lambda: status(2, '/replica?lag=1MB') == 200, what='node2, replaying, within 1 MB')
            lag = json.loads(request(3, '/replica')[1])['lag_bytes']
            assert lag > 1024 * 1024, lag
        finally:
            n3.psql('select pg_wal_replay_resume()')
        wait_until(lambda: status(3, '/replica?lag=1MB') == 200, timeout=20,
                   what='node3 back within 1 MB once it replays')


def test_abuse_never_starves_health_checks():
    c = cluster()
    with logs_on_failure(c):
        # A 1 MB header: 431 after the first 8 kB, not after reading the rest.
        t = time.monotonic()
        out = raw(1, b'GET /primary HTTP/1.1\r\nX-Big: ' + b'a' * (1 << 20) + b'\r\n\r\n')
        print(f'# 1 MB header answered in {time.monotonic() - t:.3f} s', flush=True)
        assert out.startswith(b'HTTP/1.1 431 '), out[:100]
        # Garbage, with and without an end of head.
        assert raw(1, os.urandom(200).replace(b'\n', b'') + b'\r\n\r\n').startswith(b'HTTP/1.1 400 ')
        assert raw(1, b'\x00\xff' * 100).startswith(b'HTTP/1.1 408 ')
        # A slowloris client: one byte of header at a time; cut off after http_head.
        with socket.create_connection(('127.0.0.1', PORTS[1]), timeout=10) as s:
            s.sendall(b'GET /primary HTTP/1.1\r\n')
            t = time.monotonic()
            answer = b''
            while time.monotonic() - t < 15:
                try:
                    s.sendall(b'X')
                    s.settimeout(0.3)
                    answer = s.recv(100)
                    if answer is not None:
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            print(f'# slowloris cut off after {time.monotonic() - t:.2f} s', flush=True)
            assert answer.startswith(b'HTTP/1.1 408 ') or answer == b'', answer
            assert time.monotonic() - t < 15, 'a slowloris client was never cut off'

        # 500 idle connections held open.
        pid = c.daemons[1].pid
        rows = monitoring_rows(c, 2)
        idle = []
        try:
            for _ in range(500):
                idle.append(socket.create_connection(('127.0.0.1', PORTS[1]), timeout=10))
            t = time.monotonic()
            code = status(1, '/primary')
            took = time.monotonic() - t
            fds = len(os.listdir(f'/proc/{pid}/fd'))
            print(f'# with 500 idle connections: /primary {code} in {took * 1000:.1f} ms, '
                  f'the daemon holds {fds} file descriptors', flush=True)
            assert code == 200
            assert fds < 256 + 64, fds
            # The monitoring goes on meanwhile: its loop, and node2's rows through it.
            wait_until(lambda: monitoring_rows(c, 2) > rows + 2, timeout=20,
                       what="node2's monitoring rows while node1's endpoint holds 500 connections")
            doc = json.loads(request(1, '/liveness')[1])
            assert doc['last_pass_age_s'] < 5, doc
        finally:
            for s in idle:
                s.close()
        assert status(1, '/primary') == 200


def test_frozen_server_never_freezes_its_endpoint():
    c = cluster()
    n3 = c.nodes[3]
    with logs_on_failure(c):
        pids = harness.freeze(n3.pid())
        try:
            slowest = 0.0

            def health_503() -> bool:
                nonlocal slowest
                t = time.monotonic()
                code = status(3, '/health')
                slowest = max(slowest, time.monotonic() - t)
                assert status(3, '/liveness') == 200
                return code == 503
            wait_until(health_503, timeout=40, interval=0.1,
                       what="node3's daemon to find its frozen server down")
            assert status(3, '/replica') == 503 and status(3, '/read-only') == 503
            print(f'# frozen server: slowest /health answer {slowest * 1000:.1f} ms', flush=True)
            assert slowest < 3, f'an answer took {slowest:.2f} s'

            # node2's /cluster waits for the frozen node3 (http_connect); its health paths
            # do not wait for /cluster.
            result: dict = {}

            def get_cluster():
                t = time.monotonic()
                result['answer'] = request(2, '/cluster', timeout=30)
                result['took'] = time.monotonic() - t
            fetch = threading.Thread(target=get_cluster)
            fetch.start()
            slowest = 0.0
            while fetch.is_alive():
                t = time.monotonic()
                assert status(2, '/replica') == 200
                slowest = max(slowest, time.monotonic() - t)
            fetch.join()
            code, body, _ = result['answer']
            nodes = {n['id']: n for n in json.loads(body)['data']['nodes']}
            print(f"# /cluster with node3 frozen: {code} in {result['took']:.2f} s; slowest /replica "
                  f"meanwhile {slowest * 1000:.1f} ms", flush=True)
            assert code == 200 and nodes[3]['role_found'] in ('unreachable', 'unknown'), nodes[3]
            assert nodes[1]['role_found'] == 'primary', nodes[1]
            assert result['took'] < 15, result['took']
            assert slowest < 3, f'a health answer took {slowest:.2f} s during /cluster'
        finally:
            harness.thaw(pids)
        wait_until(lambda: status(3, '/health') == 200 and status(3, '/replica') == 200, timeout=40,
                   what='node3 healthy and streaming again after SIGCONT')


def connections_to(inst: harness.Instance) -> int:
    """Connections node's server authorized so far (log_connections)."""
    return inst.logfile.read_text(errors='replace').count('connection authorized')


def test_cluster_and_node_documents():
    c = cluster()
    with logs_on_failure(c):
        cli = json.loads(pgrm('-f', c.confs[2], '--json', 'cluster', 'show', check=0).stdout)
        stable = ('id', 'name', 'type', 'active', 'role_found', 'status', 'upstream_name', 'conninfo')

        def same_as_cli() -> dict:
            code, body, _ = request(2, '/cluster')
            got = json.loads(body)
            if code == 200 and [{k: n[k] for k in stable} for n in got['data']['nodes']] == \
                    [{k: n[k] for k in stable} for n in cli['data']['nodes']]:
                return got
            return {}
        # An answer from before (node3 was frozen a moment ago) is given for http_reuse.
        doc = wait_until(same_as_cli, timeout=10, what="node2's /cluster to agree with cluster show")
        assert doc.keys() == cli.keys() and doc['command'] == 'cluster show' and doc['ok'] is True, doc
        assert [sorted(n) for n in doc['data']['nodes']] == [sorted(n) for n in cli['data']['nodes']]

        doc = json.loads(request(2, '/node')[1])
        cli = json.loads(pgrm('-f', c.confs[2], '--json', 'node', 'status', check=0).stdout)
        assert doc['command'] == 'node status' and sorted(doc['data']) == sorted(cli['data']), (doc, cli)
        for k in ('node_id', 'role', 'timeline', 'upstream_node_id', 'failover', 'failover_pause'):
            assert doc['data'][k] == cli['data'][k], (k, doc['data'][k], cli['data'][k])
        assert doc['data']['daemon']['running'] is True
        assert doc['data']['daemon']['state']['state'] == cli['data']['daemon']['state']['state'] == 'standby'
        assert doc['data']['daemon']['state']['pid'] == c.daemons[2].pid

        # A flood of /cluster: one computation (one connection to node1) per http_reuse.
        n1 = c.nodes[1]
        before = connections_to(n1)
        codes: list = []

        def flood():
            end = time.monotonic() + 3  # several http_reuse periods
            while time.monotonic() < end:
                codes.append(status(2, '/cluster'))
        t = time.monotonic()
        threads = [threading.Thread(target=flood) for _ in range(10)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        took = time.monotonic() - t
        made = connections_to(n1) - before
        print(f'# {len(codes)} /cluster requests in {took:.2f} s: {codes.count(200)} answered 200, '
              f'{made} connections to node1', flush=True)
        assert set(codes) == {200}, codes  # the last answer while the next one is computed
        assert made <= took / 1.0 + 3, f'{made} connections to node1 in {took:.2f} s'


def scrape(node: int) -> dict:
    """/metrics as {series: value}, series as written ('pgrm_up{cluster="test",node_id="1"}')."""
    code, body, headers = request(node, '/metrics')
    assert code == 200 and headers['Content-Type'].startswith('text/plain; version=0.0.4'), (code, headers)
    out = {}
    for line in body.decode().splitlines():
        if not line.startswith('#'):
            series, value = line.rsplit(' ', 1)
            out[series] = float(value)
    return out


def lsn(text: str) -> int:
    hi, lo = text.split('/')
    return (int(hi, 16) << 32) + int(lo, 16)


def test_metrics():
    c = cluster()
    with logs_on_failure(c):
        promtool = shutil.which('promtool')
        if promtool is None:
            raise harness.SkipTest('promtool not installed (Debian package prometheus; scripts/setup installs it)')
        for i in (1, 2, 3):
            body = request(i, '/metrics')[1]
            check = subprocess.run([promtool, 'check', 'metrics'], input=body, capture_output=True)
            assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), \
                (check.returncode, check.stdout, check.stderr, body.decode())
        m = {i: scrape(i) for i in (1, 2, 3)}
        show = json.loads(pgrm('-f', c.confs[1], '--json', 'cluster', 'show', check=0).stdout)
        nodes = {n['id']: n for n in show['data']['nodes']}
        for i in (1, 2, 3):
            label = f'{{cluster="test",node_id="{i}"}}'
            assert m[i]['pgrm_up' + label] == 1
            assert m[i][f'pgrm_build_info{{cluster="test",node_id="{i}",version="0.1.0"}}'] == 1
            assert m[i]['pgrm_primary' + label] == (1 if nodes[i]['role_found'] == 'primary' else 0)
            status = json.loads(pgrm('-f', c.confs[i], '--json', 'node', 'status', check=0).stdout)['data']
            assert m[i]['pgrm_timeline' + label] == status['timeline'], (m[i], status)
            assert m[i]['pgrm_paused' + label] == (1 if status['failover_pause']['paused'] else 0)
            assert m[i]['pgrm_fences_total' + label] == 0 and m[i]['pgrm_failovers_total' + label] == 0
            assert abs(m[i]['pgrm_last_pass_timestamp_seconds' + label] - time.time()) < 10
            state = 'primary' if i == 1 else 'standby'
            assert m[i][f'pgrm_state{{cluster="test",node_id="{i}",state="{state}"}}'] == 1
            # Positions: the scrape came first, so cluster show's are the same or later,
            # by the heartbeats and monitoring rows written since (a few kB).
            if i == 1:
                scraped, shown = m[i]['pgrm_wal_current_bytes' + label], lsn(nodes[i]['current_lsn'])
            else:
                scraped, shown = m[i]['pgrm_wal_replay_bytes' + label], lsn(nodes[i]['replay_lsn'])
                assert m[i]['pgrm_lag_bytes' + label] < 1 << 20 and nodes[i]['lag_bytes'] < 1 << 20
                assert m[i]['pgrm_streaming' + label] == 1 and nodes[i]['streaming'] is True
            assert scraped <= shown < scraped + (1 << 20), (i, scraped, shown)


def test_listen_errors_and_reload():
    c = cluster()
    n1 = c.nodes[1]
    sb = c.sb
    with logs_on_failure(c):
        # Not host:port: refused when the file is read.
        conf = harness.write_daemon_conf(sb, 9, n1, name='bad-listen', log_file=None, http_listen='8008')
        r = pgrm('-f', conf, persona='repmgrd', check=1)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and 'http_listen: invalid value "8008": must be host:port' in lines[0], r.stderr
        # An address in use: the daemon stops at its start.
        conf = harness.write_daemon_conf(sb, 9, n1, name='busy-listen', log_file=None,
                                         http_listen=f'127.0.0.1:{PORTS[1]}')
        r = pgrm('-f', conf, persona='repmgrd', check=1)
        assert f'could not listen on "127.0.0.1:{PORTS[1]}": Address already in use' in r.stderr, r.stderr
        # SIGHUP with another http_listen keeps the listener in use.
        conf3 = c.confs[3]
        original = conf3.read_text()
        other = harness.free_port()
        try:
            conf3.write_text(original.replace(f'127.0.0.1:{PORTS[3]}', f'127.0.0.1:{other}'))
            os.kill(c.daemons[3].pid, signal.SIGHUP)
            c.daemons[3].wait_log('keeps its listener until repmgrd restarts')
            c.daemons[3].wait_log('configuration reloaded')
            assert status(3, '/liveness') == 200
            try:
                socket.create_connection(('127.0.0.1', other), timeout=2).close()
                raise AssertionError(f'something listens on {other}')
            except ConnectionRefusedError:
                pass
        finally:
            conf3.write_text(original)
            os.kill(c.daemons[3].pid, signal.SIGHUP)
        stays_false(lambda: status(3, '/liveness') != 200, 1, what='node3 endpoint failing after reload')


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
