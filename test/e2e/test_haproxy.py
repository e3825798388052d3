#!/usr/bin/env python3
"""End to end: a real HAProxy (Debian's haproxy, started by this test on loopback ports)
routing by repmgrd's HTTP endpoint, as repmgrd(8) HTTP ENDPOINT shows it: a write backend
checking each daemon's /primary, a read backend checking /replica?lag=1MB, both with
`option httpchk` (OPTIONS) and `http-check expect status 200`, fast inter.

  1. reads: a standby whose replay is paused while the primary writes leaves the read
     backend, and comes back once it replays; the other standby stays;
  2. kill -9 of the primary while a client writes through HAProxy without pause and the
     endpoints are abused (500 idle connections held, garbage, 1 MB headers): a standby
     is promoted within the daemon test's bound, writes resume through HAProxy on the new
     primary, and the endpoints still answer a fresh client;
  3. a frozen primary (SIGSTOP of its postmaster and children) is replaced and, thawed,
     fenced by its daemon: HAProxy never again marks it up for writes, and it holds no
     row written after it was thawed.

Cases 1 and 2 share one cluster (harness.setup_three, failover = automatic, DAEMON_FAST);
case 3 has its own, as a cluster that lost its primary to kill -9 has two active nodes
left and cannot fail over again.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import DaemonCluster, one_promoted, setup_three, stays_false, wait_until  # noqa: E402


class HAProxy:
    """haproxy -db on loopback: a write frontend and a read frontend, and a stats socket."""

    def __init__(self, c: DaemonCluster, http_ports: dict, lag: str = '1MB'):
        self.write_port, self.read_port = harness.free_port(), harness.free_port()
        self.stats = c.sb.path('haproxy.sock')
        servers = ''.join(f'    server node{i} 127.0.0.1:{c.nodes[i].port} check port {http_ports[i]}\n'
                          for i in sorted(c.nodes))
        checks = '    default-server inter 200ms fall 1 rise 1 on-marked-down shutdown-sessions\n'
        cfg = (f'global\n    maxconn 4000\n    stats socket {self.stats} level admin\n'
               'defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n'
               '    timeout server 30s\n    timeout check 1s\n'
               f'frontend write\n    bind 127.0.0.1:{self.write_port}\n    default_backend write\n'
               'backend write\n    option httpchk OPTIONS /primary\n    http-check expect status 200\n'
               + checks + servers +
               f'frontend read\n    bind 127.0.0.1:{self.read_port}\n    default_backend read\n'
               f'backend read\n    balance roundrobin\n    option httpchk OPTIONS /replica?lag={lag}\n'
               '    http-check expect status 200\n' + checks + servers)
        self.cfg = c.sb.write_config('haproxy', cfg)
        haproxy = shutil.which('haproxy')
        if haproxy is None:
            raise harness.SkipTest('haproxy not installed (scripts/setup installs it)')
        check = subprocess.run([haproxy, '-c', '-f', str(self.cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = c.sb.path('haproxy.out')
        with open(self.log, 'ab') as out:
            self.proc = subprocess.Popen([haproxy, '-db', '-f', str(self.cfg)], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        c.sb.on_cleanup(self.stop)
        wait_until(lambda: self.stats.exists(), what='haproxy to start')

    def stop(self):
        harness.end_process_group(self.proc)

    def up(self, backend: str) -> set:
        """The servers of backend that haproxy has UP now."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats))
            s.sendall(b'show stat\n')
            data = b''
            while chunk := s.recv(65536):
                data += chunk
        up = set()
        for line in data.decode().splitlines():
            f = line.split(',')
            if len(f) > 17 and f[0] == backend and f[1].startswith('node') and f[17] == 'UP':
                up.add(f[1])
        return up


class Writer(threading.Thread):
    """One autocommitted INSERT after another through HAProxy's write frontend, each a new
    session, recording which server (port) acknowledged each i."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.acked: dict = {}      # i -> server port
        self.first_ack_on: dict = {}  # server port -> time.monotonic() of its first ack
        self.failed = 0
        self.stop_event = threading.Event()

    def run(self):
        i = 0
        while not self.stop_event.is_set():
            i += 1
            r = harness.run_as_pg([harness.pg_bin('psql'), '-X', '-Aqt', '-h', '127.0.0.1', '-p', str(self.port),
                                   '-U', 'postgres', '-d', 'pgbench', '-v', 'ON_ERROR_STOP=1', '-c',
                                   f"set statement_timeout = '3s'; insert into ha(i, port) "
                                   f"values ({i}, current_setting('port')::int) returning port"],
                                  check=False, timeout=10, env={'PGCONNECT_TIMEOUT': '2'})
            if r.returncode == 0 and r.stdout.strip():
                port = int(r.stdout.split()[-1])
                self.acked[i] = port
                self.first_ack_on.setdefault(port, time.monotonic())
            else:
                self.failed += 1
                time.sleep(0.05)

    def stop(self):
        self.stop_event.set()
        self.join(20)


_shared = None
HTTP: dict = {}


def three_nodes(sb: harness.Sandbox) -> tuple:
    """A cluster with an HTTP endpoint on every daemon, a table ha, and HAProxy before it."""
    c = DaemonCluster(sb)
    sb.on_cleanup(c.close)
    ports = {i: harness.free_port() for i in (1, 2, 3)}
    setup_three(c, node_settings={i: {'http_listen': f'127.0.0.1:{ports[i]}'} for i in (1, 2, 3)})
    c.nodes[1].psql('create table ha(i int primary key, port int, at timestamptz default clock_timestamp())',
                    db='pgbench')
    proxy = HAProxy(c, ports)
    wait_until(lambda: proxy.up('write') == {'node1'} and proxy.up('read') == {'node2', 'node3'},
               what='haproxy: node1 up for writes, node2 and node3 for reads')
    return c, proxy, ports


def shared() -> tuple:
    global _shared
    if _shared is None:
        _shared = three_nodes(harness.Sandbox())
    return _shared


@contextlib.contextmanager
def logs_on_failure(c: DaemonCluster, proxy: HAProxy | None = None):
    try:
        yield
    except BaseException:
        c.dump()
        if proxy is not None:
            sys.stderr.write(proxy.log.read_text(errors='replace')[-4000:])
        raise


def test_reads_follow_replay_lag():
    c, proxy, ports = shared()
    n1, n3 = c.nodes[1], c.nodes[3]
    with logs_on_failure(c, proxy):
        n3.psql('select pg_wal_replay_pause()')
        try:
            n1.psql("insert into ha(i, port) select -g, 0 from generate_series(1, 20000) g", db='pgbench')
            n1.psql("create table lagged as select repeat('x', 1000) from generate_series(1, 4000)", db='pgbench')
            wait_until(lambda: proxy.up('read') == {'node2'}, timeout=20,
                       what='node3, paused in replay, to leave the read backend')
        finally:
            n3.psql('select pg_wal_replay_resume()')
        wait_until(lambda: proxy.up('read') == {'node2', 'node3'}, timeout=20,
                   what='node3 back in the read backend once it replays')
        assert proxy.up('write') == {'node1'}


def test_kill9_writes_resume_through_haproxy_despite_abuse():
    c, proxy, ports = shared()
    n1 = c.nodes[1]
    with logs_on_failure(c, proxy):
        writer = Writer(proxy.write_port)
        writer.start()
        idle: list = []
        stop_abuse = threading.Event()

        def keep_idle():
            # The endpoints close a connection that sent no head within http_head (2 s):
            # reopened as soon as they are, so that 500 stay open all through the failover.
            while not stop_abuse.is_set():
                poll = select.poll()
                at = {}
                for k, s in enumerate(idle):
                    if s.fileno() < 0:  # its reopening failed: again
                        with contextlib.suppress(OSError):
                            idle[k] = s = socket.create_connection(('127.0.0.1', ports[2 + k % 2]), timeout=5)
                    if s.fileno() >= 0:
                        poll.register(s, select.POLLIN)
                        at[s.fileno()] = k
                for fd, _ in poll.poll(200):
                    k = at[fd]
                    idle[k].close()
                    with contextlib.suppress(OSError):
                        idle[k] = socket.create_connection(('127.0.0.1', ports[2 + k % 2]), timeout=5)
                        reopened[0] += 1

        def abuse():
            while not stop_abuse.is_set():
                for i in (2, 3):
                    with contextlib.suppress(OSError):
                        with socket.create_connection(('127.0.0.1', ports[i]), timeout=2) as s:
                            s.sendall(os.urandom(512).replace(b'\n', b'') + b'\r\n\r\n')
                            s.recv(100)
                        with socket.create_connection(('127.0.0.1', ports[i]), timeout=2) as s:
                            s.sendall(b'GET /primary HTTP/1.1\r\nX: ' + b'a' * (1 << 20) + b'\r\n\r\n')
                            s.recv(100)
        abuser = threading.Thread(target=abuse, daemon=True)
        keeper = threading.Thread(target=keep_idle, daemon=True)
        reopened = [0]
        try:
            wait_until(lambda: list(writer.acked.values()).count(n1.port) >= 10, timeout=30,
                       what='10 writes acknowledged by node1 through haproxy')
            for k in range(500):
                idle.append(socket.create_connection(('127.0.0.1', ports[2 + k % 2]), timeout=5))
            abuser.start()
            keeper.start()
            t_kill = time.monotonic()
            n1.kill9()
            new_id = wait_until(lambda: one_promoted(c), timeout=30,
                                what='exactly one of node2/node3 to accept writes, during the abuse')
            t_promoted = time.monotonic() - t_kill
            new = c.nodes[new_id]
            wait_until(lambda: new.port in writer.first_ack_on, timeout=30,
                       what=f'writes through haproxy to resume on node{new_id}')
            t_resumed = writer.first_ack_on[new.port] - t_kill
            print(f'# kill -9 -> node{new_id} writable in {t_promoted:.2f} s, writes through haproxy '
                  f'resumed in {t_resumed:.2f} s ({writer.failed} failed attempts meanwhile; '
                  f'{reopened[0]} idle connections reopened)', flush=True)
            wait_until(lambda: reopened[0] >= 500, timeout=30, what='500 idle connections closed and reopened')
            assert harness.http_status(ports[new_id], '/primary') == 200
            assert harness.http_status(ports[5 - new_id], '/primary') == 503
            wait_until(lambda: proxy.up('write') == {f'node{new_id}'}, timeout=10,
                       what=f'haproxy: node{new_id} alone up for writes')
        finally:
            stop_abuse.set()
            if keeper.is_alive():
                keeper.join(5)
            for s in idle:
                s.close()
            writer.stop()
        # Every write haproxy sent after the failover went to the new primary.
        late = {i: p for i, p in writer.acked.items() if p != n1.port}
        assert set(late.values()) == {new.port}, late
        rows = set(int(x) for x in new.psql(f'select i from ha where port = {new.port}', db='pgbench').split())
        assert set(late) <= rows, sorted(set(late) - rows)[:20]


def test_frozen_primary_never_gets_writes_once_fenced():
    with harness.Sandbox() as sb:
        c, proxy, ports = three_nodes(sb)
        n1 = c.nodes[1]
        with logs_on_failure(c, proxy):
            writer = Writer(proxy.write_port)
            writer.start()
            node1_up_again: list = []
            watching = threading.Event()

            def watch():  # node1 marked up for writes after its freeze was noticed
                down_seen = False
                while not watching.is_set():
                    up = proxy.up('write')
                    down_seen = down_seen or 'node1' not in up
                    if down_seen and 'node1' in up:
                        node1_up_again.append(time.monotonic())
                    time.sleep(0.05)
            watcher = threading.Thread(target=watch, daemon=True)
            pids = []
            try:
                wait_until(lambda: list(writer.acked.values()).count(n1.port) >= 10, timeout=30,
                           what='10 writes acknowledged by node1 through haproxy')
                watcher.start()
                pids = harness.freeze(n1.pid())
                new_id = wait_until(lambda: one_promoted(c), timeout=90,
                                    what='a standby to be promoted while node1 is frozen')
                new = c.nodes[new_id]
                wait_until(lambda: new.port in writer.first_ack_on, timeout=30,
                           what=f'writes through haproxy to resume on node{new_id}')
            finally:
                harness.thaw(pids)
            c.daemons[1].wait_log('fencing this primary', timeout=30)
            # When node1's daemon entered state fenced, just before it fenced, recorded on the
            # new primary. A backend frozen mid-INSERT may commit after the thaw and before
            # the fence: that row is no write routed to a fenced node.
            fenced_at = wait_until(
                lambda: new.psql("select max(event_timestamp) from repmgr_test.events "
                                 "where node_id = 1 and event = 'repmgrd_fenced'", db='pgbench'),
                timeout=30, what="node1's repmgrd_fenced event on the new primary")
            # Writes go on through haproxy; node1 never takes one again.
            acked = len(writer.acked)
            wait_until(lambda: len(writer.acked) > acked + 10, timeout=30, what='10 more writes after the fence')
            stays_false(lambda: node1_up_again, 2, what='haproxy marking node1 up for writes again')
            watching.set()
            watcher.join(5)
            writer.stop()
            assert not node1_up_again, node1_up_again
            after = n1.psql(f"select count(*) from ha where at >= '{fenced_at}'", db='pgbench')
            assert after == '0', f'{after} rows written on node1 after it was fenced'
            assert proxy.up('write') == {f'node{new_id}'}
            print(f'# frozen node1: node{new_id} took the writes; node1, fenced, holds none written '
                  f'after its fence ({len(writer.acked)} writes acknowledged in all)', flush=True)


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
