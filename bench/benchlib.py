"""Shared helpers for pgrm's benchmarks (Python 3 standard library only).

Builds on test/e2e/harness.py: Sandbox/Instance start real PostgreSQL servers in a
throw-away directory under /tmp, run_as_pg runs a program as the postgres OS user, pgrm
runs the built binary (build/cmd/repmgr); the cluster setup steps (make_primary,
write_conf, pgbench, waiting for streaming, ...) are harness's too, shared with the e2e
tests, and re-exported here. Added here: MiniPg (a wire-protocol client, for probes that
must cost one round trip), AckWriter (commits rows on whichever node accepts writes and
records each acknowledgement), and three-node clusters under pgrm (PgrmCluster) and under
repmgr 5 (Repmgr5Cluster, with ensure_repmgr5 installing it). See bench/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'test' / 'e2e'))
import harness  # noqa: E402
from harness import (end_process_group, freeze, make_primary, parse_json, pg_bin,  # noqa: E402,F401
                     pgbench, pgbench_background, pgrm, popen_as_pg, run_as_pg, streaming, thaw,
                     wait_streaming, wait_streaming_from, wait_until, write_conf)

__all__ = ['harness', 'pg_bin', 'pgrm', 'run_as_pg', 'wait_until', 'REPO', 'make_primary',
           'pgbench', 'du_bytes', 'remove_tree', 'median', 'timed', 'parse_json', 'fmt_bytes',
           'check_binary', 'write_conf', 'end_process_group', 'freeze', 'pgbench_background',
           'popen_as_pg', 'streaming', 'thaw', 'wait_streaming', 'wait_streaming_from',
           'load_average', 'PgError', 'MiniPg', 'Probe', 'AckWriter', 'BenchCluster',
           'PgrmCluster', 'repmgr5_path', 'ensure_programs', 'ensure_repmgr5', 'Repmgr5Cluster',
           'PatroniNode', 'PatroniCluster']


def check_binary():
    exe = harness.pgrm_path('repmgr')
    if not exe.exists():
        sys.exit(f'{exe} does not exist: build first (ninja -C {harness.BUILD_DIR})')
    if harness.PG_BINDIR is None:
        sys.exit('no PostgreSQL binaries: set PG_BINDIR')


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


def fmt_bytes(n: int) -> str:
    return f'{n} ({n / (1024 * 1024):.1f} MiB)'


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (other jobs show up in the times)."""
    return ' '.join(open('/proc/loadavg').read().split()[:3])


# --------------------------------------------------------------------------------------
# A minimal PostgreSQL client (trust authentication, simple query protocol)


class PgError(Exception):
    pass


class MiniPg:
    """One session, trust authentication, the simple query protocol: a query costs a round
    trip, not a psql start-up."""

    def __init__(self, port: int, db: str = 'pgbench', user: str = 'postgres', timeout: float = 2.0,
                 application_name: str = 'pgrm_bench'):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b''
        params = b''.join(k.encode() + b'\0' + v.encode() + b'\0' for k, v in
                          (('user', user), ('database', db), ('application_name', application_name)))
        body = struct.pack('!i', 196608) + params + b'\0'
        self.sock.sendall(struct.pack('!i', len(body) + 4) + body)
        while True:
            kind, payload = self._read()
            if kind == b'R':
                if struct.unpack('!i', payload[:4])[0] != 0:
                    raise PgError('authentication other than trust requested')
            elif kind == b'E':
                raise PgError(self._error(payload))
            elif kind == b'Z':
                return

    def _recv(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise PgError('connection closed')
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read(self):
        head = self._recv(5)
        length = struct.unpack('!i', head[1:])[0]
        return head[:1], self._recv(length - 4)

    @staticmethod
    def _error(payload: bytes) -> str:
        fields = {}
        for part in payload.split(b'\0'):
            if part:
                fields[part[:1]] = part[1:].decode(errors='replace')
        return fields.get(b'M', 'error')

    def query(self, sql: str) -> list:
        """Rows (lists of str|None) of the last result; raises PgError on an error."""
        data = sql.encode() + b'\0'
        self.sock.sendall(b'Q' + struct.pack('!i', len(data) + 4) + data)
        rows, error = [], None
        while True:
            kind, payload = self._read()
            if kind == b'D':
                n = struct.unpack('!h', payload[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    ln = struct.unpack('!i', payload[pos:pos + 4])[0]
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(payload[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif kind == b'E':
                error = self._error(payload)
            elif kind == b'Z':
                if error:
                    raise PgError(error)
                return rows

    def close(self):
        try:
            self.sock.sendall(b'X' + struct.pack('!i', 4))
        except OSError:
            pass
        self.sock.close()


class Probe:
    """A lazily (re)connected MiniPg to one port."""

    def __init__(self, port: int):
        self.port = port
        self.conn: MiniPg | None = None

    def query(self, sql: str) -> list | None:
        try:
            if self.conn is None:
                self.conn = MiniPg(self.port, timeout=2.0)
            return self.conn.query(sql)
        except (OSError, PgError) as e:
            if not isinstance(e, PgError) or 'read-only' not in str(e):
                if self.conn is not None:
                    self.conn.sock.close()
                self.conn = None
            return None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------------------
# An acknowledging writer


class AckWriter(threading.Thread):
    """Commits one small row after another into `table` on whichever node accepts writes,
    and remembers which were acknowledged, and when.

    It keeps a session to each node (ports: node name -> port), stays on the node that last
    committed, and after a failure tries the next node at once (a whole round of refusals
    costs a 10 ms pause). Every attempt is a new id; `acks` holds (id, time.monotonic() of
    the acknowledgement, node) of each committed row, `failures` (id, time, node, error) of
    each attempt that was refused or got no answer (one whose connection broke may have
    committed: it is not counted as acknowledged)."""

    def __init__(self, ports: dict, table: str = 'ack', pause: float = 0.005):
        super().__init__(daemon=True)
        self.ports, self.table, self.pause = ports, table, pause
        self.acks: list = []
        self.failures: list = []
        self._done = threading.Event()

    @staticmethod
    def create_sql(table: str = 'ack') -> str:
        return (f'create table {table}(id bigint primary key, node text not null, '
                'at timestamptz not null default clock_timestamp())')

    def run(self):
        names = list(self.ports)
        conns: dict = {}
        cur, next_id, refused_in_a_row = 0, 0, 0
        while not self._done.is_set():
            next_id += 1
            node = names[cur]
            try:
                if node not in conns:
                    conns[node] = MiniPg(self.ports[node], timeout=2.0, application_name='ack_writer')
                conns[node].query(f"insert into {self.table}(id, node) values ({next_id}, '{node}')")
                self.acks.append((next_id, time.monotonic(), node))
                refused_in_a_row = 0
                time.sleep(self.pause)
            except (OSError, PgError) as e:
                self.failures.append((next_id, time.monotonic(), node, str(e)))
                if 'read-only' not in str(e) and node in conns:
                    conns.pop(node).sock.close()
                cur = (cur + 1) % len(names)
                refused_in_a_row += 1
                if refused_in_a_row % len(names) == 0:
                    time.sleep(0.01)
        for c in conns.values():
            c.close()

    def stop(self):
        self._done.set()
        self.join(30)

    def lost(self, present: set) -> list:
        """The acknowledged ids missing from present (the ids a node holds)."""
        return sorted(i for i, _, _ in self.acks if i not in present)


# --------------------------------------------------------------------------------------
# Clusters of three nodes on loopback, under each tool


class BenchCluster:
    """nodes (id -> Instance), confs (id -> repmgr.conf), daemons (id -> Popen), and the
    background load; close() ends the daemons and the load."""

    def __init__(self, sb: harness.Sandbox):
        self.sb = sb
        self.nodes, self.confs, self.daemons, self.bg = {}, {}, {}, []

    def pgbench(self, *args, on: int = 1):
        p = pgbench_background(self.nodes[on], *args, log=self.sb.path('pgbench.out'))
        self.bg.append(p)
        return p

    def close(self):
        for p in self.bg + list(self.daemons.values()):
            end_process_group(p)


class PgrmCluster(BenchCluster):
    """node1 gets `pgbench -i -s SCALE` and `master register`; node2 and node3 are cloned
    with `repmgr -f confN ... standby clone` (application_name = node name), started and
    registered; a repmgrd runs on each, in the foreground as root, its log in
    repmgrd<N>.log. settings are added to every node's repmgr.conf (cluster `bench`).
    Ready when node1 streams to both standbys, both standbys wrote monitoring rows and
    node1's daemon watches the primary."""

    def __init__(self, sb: harness.Sandbox, scale: int, settings: dict):
        super().__init__(sb)
        n1 = make_primary(sb, 'node1', scale=scale, timeout=3600)
        n1.psql('checkpoint')
        self.nodes[1] = n1
        for i in (1, 2, 3):
            if i > 1:
                self.nodes[i] = sb.new_instance(f'node{i}')
            self.confs[i] = write_conf(sb, i, self.nodes[i], cluster='bench', node_name=f'node{i}',
                                       log_file=sb.path(f'repmgrd{i}.log'), **settings)
        pgrm('-f', self.confs[1], 'master', 'register', check=0)
        for i in (2, 3):
            n = self.nodes[i]
            pgrm('-f', self.confs[i], '-D', n.datadir, '-d', 'pgbench', '-h', '127.0.0.1',
                 '-p', n1.port, '-U', 'postgres', 'standby', 'clone', check=0, timeout=3600)
            n.start()
        for i in (2, 3):
            wait_streaming_from(self.nodes[i], n1, timeout=120)
            pgrm('-f', self.confs[i], 'standby', 'register', check=0)
        wait_until(lambda: n1.psql("select application_name from pg_stat_replication "
                                   "where state = 'streaming' order by 1") == 'node2\nnode3',
                   what='node1 streaming to node2 and node3')
        for i in (1, 2, 3):
            out = open(sb.path(f'repmgrd{i}.out'), 'ab')
            self.daemons[i] = subprocess.Popen(
                [str(harness.pgrm_path('repmgrd')), '-f', str(self.confs[i])],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=harness.clean_env(), cwd=str(sb.root), start_new_session=True)
            out.close()
        wait_until(lambda: n1.psql('select count(distinct standby_node) from '
                                   'repmgr_bench.repl_monitor', db='pgbench') == '2',
                   timeout=60, what='monitoring rows of both standbys')
        wait_until(lambda: 'this node is the primary' in
                   sb.path('repmgrd1.log').read_text(errors='replace'),
                   timeout=30, what='node1 daemon to watch the primary')

    def daemon_log(self, i: int) -> str:
        return self.sb.path(f'repmgrd{i}.log').read_text(errors='replace')

    def switchover(self, i: int, timeout: float) -> subprocess.CompletedProcess:
        """`repmgr -f confN standby switchover --json` on node i (no SSH: node1's repmgrd
        demotes it), with --wait timeout."""
        return pgrm('-f', self.confs[i], 'standby', 'switchover', '--json', '--wait', int(timeout),
                    timeout=timeout + 30)


# repmgr 5 (the field's own tool), Debian's postgresql-NN-repmgr, as the baseline


def repmgr5_path(program: str = 'repmgr') -> Path:
    """repmgr 5's programs: Debian installs them beside PostgreSQL's."""
    return harness.PG_BINDIR / program


def ensure_programs(packages: dict) -> list:
    """packages: program path -> Debian package providing it. Installs (apt-get update,
    apt-get install) the packages whose program is missing, when we are root on a system
    with apt-get; otherwise exits with a message naming them. Returns what it installed."""
    missing = sorted({pkg for path, pkg in packages.items() if not Path(path).is_file()})
    if not missing:
        return []
    if not harness.IS_ROOT or not shutil.which('apt-get'):
        sys.exit(f'missing: {", ".join(missing)}; install them (apt-get install {" ".join(missing)}) '
                 'or run this as root, which installs them')
    print(f'# installing {", ".join(missing)} (apt-get update; apt-get install -y '
          f'--no-install-recommends {" ".join(missing)})', flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    for argv in (['apt-get', 'update'],
                 ['apt-get', 'install', '-y', '--no-install-recommends', *missing]):
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
        if p.returncode != 0:
            sys.exit(f'{" ".join(argv)}: exit code {p.returncode}\n{p.stdout[-3000:]}{p.stderr[-3000:]}')
    still = sorted(str(path) for path in packages if not Path(path).is_file())
    if still:
        sys.exit(f'installed {", ".join(missing)}, but still missing: {", ".join(still)}')
    return missing


def ensure_repmgr5() -> str:
    """Makes sure repmgr 5 (postgresql-NN-repmgr) and an sshd and ssh client are installed
    (see ensure_programs); returns `repmgr --version`."""
    if harness.PG_BINDIR is None:
        sys.exit('no PostgreSQL binaries: set PG_BINDIR')
    major = harness.PG_BINDIR.parent.name
    ensure_programs({repmgr5_path('repmgr'): f'postgresql-{major}-repmgr',
                     repmgr5_path('repmgrd'): f'postgresql-{major}-repmgr',
                     '/usr/sbin/sshd': 'openssh-server', '/usr/bin/ssh': 'openssh-client',
                     '/usr/bin/ssh-keygen': 'openssh-client'})
    return run_as_pg([repmgr5_path(), '--version']).stdout.strip()


class Repmgr5Cluster(BenchCluster):
    """The same three nodes under repmgr 5, everything run as the postgres OS user (repmgr
    refuses root): node1 with shared_preload_libraries = 'repmgr', `pgbench -i -s SCALE`
    and `repmgr primary register` (which creates the extension); node2 and node3 by
    `repmgr standby clone --fast-checkpoint`, started, `standby register`; `repmgrd
    --daemonize=false` on each, its log in repmgrd5-<N>.log.

    Each node's repmgr.conf (repmgr5-<N>.conf) names it (node_id, node_name, conninfo,
    data_directory, pg_bindir), adds settings, and holds what repmgr runs over SSH: the
    server's start/stop/restart through pg_ctl with the node's port and socket directory
    and a log file (a server started without -l would hold the SSH session open), and
    ssh_options for the sandbox's own sshd (harness.Sshd on 127.0.0.1: its host key, a key
    for the postgres user, a known_hosts file; nobody's ~/.ssh is read or written)."""

    def __init__(self, sb: harness.Sandbox, scale: int, settings: dict):
        super().__init__(sb)
        self.sshd = harness.Sshd(sb, '127.0.0.1')
        self.repmgr = str(repmgr5_path('repmgr'))
        n1 = make_primary(sb, 'node1', scale=scale, timeout=3600,
                          extra_conf={'shared_preload_libraries': 'repmgr'})
        n1.psql('checkpoint')
        self.nodes[1] = n1
        for i in (1, 2, 3):
            if i > 1:
                self.nodes[i] = sb.new_instance(f'node{i}')
            self.confs[i] = sb.write_config(f'repmgr5-{i}', self.conf_text(i, settings))
        self.run(1, 'primary', 'register')
        for i in (2, 3):
            self.run(i, '-h', '127.0.0.1', '-p', n1.port, '-U', 'postgres', '-d', 'pgbench',
                     'standby', 'clone', '--fast-checkpoint', timeout=3600)
            self.nodes[i].start()
        for i in (2, 3):
            wait_streaming_from(self.nodes[i], n1, timeout=120)
            self.run(i, 'standby', 'register')
        wait_until(lambda: n1.psql("select application_name from pg_stat_replication "
                                   "where state = 'streaming' order by 1") == 'node2\nnode3',
                   what='node1 streaming to node2 and node3')
        for i in (1, 2, 3):
            self.daemons[i] = popen_as_pg([repmgr5_path('repmgrd'), '-f', self.confs[i],
                                           '--daemonize=false', '--no-pid-file'],
                                          log=sb.path(f'repmgrd5-{i}.out'))
        for i in (1, 2, 3):
            wait_until(lambda i=i: 'monitoring' in self.daemon_log(i), timeout=60,
                       what=f'repmgrd 5 on node{i} to monitor')

    def conf_text(self, i: int, settings: dict) -> str:
        n = self.nodes[i]
        pg_ctl = harness.pg_bin('pg_ctl')
        conf = self.sb.path(f'repmgr5-{i}.conf')
        start = (f'{pg_ctl} -D {n.datadir} -l {n.logfile} -o "-p {n.port} -k {n.socket_dir}" '
                 '-w -t 120 start')
        values = {
            'node_id': i, 'node_name': f'node{i}',
            'conninfo': f'host=127.0.0.1 port={n.port} user=postgres dbname=pgbench connect_timeout=2',
            'data_directory': n.datadir, 'pg_bindir': harness.PG_BINDIR,
            'ssh_options': f'-q -o ConnectTimeout=10 {self.sshd.ssh_options()}',
            'service_start_command': start,
            'service_stop_command': f'{pg_ctl} -D {n.datadir} -m fast -w -t 120 stop',
            'service_restart_command': (f'{pg_ctl} -D {n.datadir} -l {n.logfile} '
                                        f'-o "-p {n.port} -k {n.socket_dir}" -m fast -w -t 120 restart'),
            'promote_command': f'{self.repmgr} standby promote -f {conf} --log-to-file',
            'follow_command': f'{self.repmgr} standby follow -f {conf} --log-to-file --upstream-node-id=%n',
            'log_file': self.sb.path(f'repmgrd5-{i}.log'),
            **settings,
        }
        return ''.join(f'{k}={v}\n' if isinstance(v, int) else f"{k}='{v}'\n"
                       for k, v in values.items())

    def run(self, i: int, *args, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """repmgr -f repmgr5-<i>.conf ARGS, as the postgres OS user."""
        return run_as_pg([self.repmgr, '-f', self.confs[i], *args], check=check, timeout=timeout)

    def switchover(self, i: int, timeout: float) -> subprocess.CompletedProcess:
        """`repmgr standby switchover --siblings-follow` on node i (over SSH to node1)."""
        return self.run(i, 'standby', 'switchover', '--siblings-follow', check=False, timeout=timeout)

    def daemon_log(self, i: int) -> str:
        text = ''
        for p in (self.sb.path(f'repmgrd5-{i}.log'), self.sb.path(f'repmgrd5-{i}.out')):
            try:
                text += p.read_text(errors='replace')
            except OSError:
                pass
        return text


# Patroni (Debian's patroni 3.0.2), on an etcd cluster the caller started


class PatroniNode:
    """A server Patroni runs: its port, data directory, REST API port."""

    def __init__(self, sb: harness.Sandbox, i: int):
        self.name = f'node{i}'
        self.port = harness.free_port()
        self.api = harness.free_port()
        self.datadir = sb.mkdir_for_pg(f'patroni{i}')
        self.socket_dir = sb.mkdir_for_pg(f'patroni{i}.sock')

    def pid(self) -> int | None:
        """The postmaster's pid (postmaster.pid's first line), None when it has none."""
        try:
            return int((self.datadir / 'postmaster.pid').read_text().split('\n', 1)[0])
        except (OSError, ValueError):
            return None

    def role(self) -> str:
        """What Patroni's REST API says of this node: 'primary', 'replica', or '' (no answer)."""
        import urllib.request
        for role in ('primary', 'replica'):
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{self.api}/{role}', timeout=2) as r:
                    if r.status == 200:
                        return role
            except OSError:
                pass
        return ''

    def psql(self, sql: str, db: str = 'postgres') -> str:
        return run_as_pg([pg_bin('psql'), '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1',
                          '-p', self.port, '-U', 'postgres', '-d', db, '-c', sql]).stdout.strip()


class PatroniCluster(BenchCluster):
    """Three nodes under Patroni on etcd (etcd_hosts: 'host:port,...'), scope `bench` under
    namespace /patroni-bench/: node1 bootstraps (initdb with checksums), takes `pgbench -i -s
    SCALE`; node2 and node3 are started then and clone it by pg_basebackup, as Patroni does.
    timers: Patroni's ttl, loop_wait and retry_timeout (its dynamic configuration). Each
    `patroni` runs as the postgres OS user in its own session, its output in patroni<N>.log.
    Ready when node1 is the primary and streams to both replicas."""

    def __init__(self, sb: harness.Sandbox, scale: int, etcd_hosts: str, timers: dict):
        super().__init__(sb)
        self.nodes = {i: PatroniNode(sb, i) for i in (1, 2, 3)}
        for i in (1, 2, 3):
            self.confs[i] = sb.write_config(f'patroni{i}', json.dumps(self.conf(i, etcd_hosts, timers)))
        self.start(1)
        wait_until(lambda: self.nodes[1].role() == 'primary', timeout=120, what='Patroni to bootstrap node1')
        n1 = self.nodes[1]
        n1.psql('create database pgbench')
        run_as_pg([pg_bin('pgbench'), '-i', '-s', str(scale), '-q', '-h', '127.0.0.1', '-p', n1.port,
                   '-U', 'postgres', 'pgbench'], timeout=3600)
        n1.psql('checkpoint')
        for i in (2, 3):
            self.start(i)
        wait_until(lambda: n1.psql("select application_name from pg_stat_replication "
                                   "where state = 'streaming' order by 1") == 'node2\nnode3',
                   timeout=600, what='node1 streaming to node2 and node3 under Patroni')

    def conf(self, i: int, etcd_hosts: str, timers: dict) -> dict:
        n = self.nodes[i]
        trust = ['local all all trust', 'host all all 127.0.0.1/32 trust',
                 'host replication all 127.0.0.1/32 trust']
        return {
            'scope': 'bench', 'namespace': '/patroni-bench/', 'name': n.name,
            'restapi': {'listen': f'127.0.0.1:{n.api}', 'connect_address': f'127.0.0.1:{n.api}'},
            'etcd3': {'hosts': etcd_hosts.split(',')},
            'bootstrap': {
                'dcs': {**timers, 'maximum_lag_on_failover': 1048576,
                        'postgresql': {'use_pg_rewind': True,
                                       'parameters': {'wal_log_hints': 'on', 'max_wal_senders': 10,
                                                      'shared_buffers': '128MB'}}},
                'initdb': [{'encoding': 'UTF8'}, 'data-checksums'],
            },
            'postgresql': {
                'listen': f'127.0.0.1:{n.port}', 'connect_address': f'127.0.0.1:{n.port}',
                'data_dir': str(n.datadir), 'bin_dir': str(harness.PG_BINDIR),
                'pgpass': str(self.sb.root / f'patroni{i}.pgpass'),
                'parameters': {'unix_socket_directories': str(n.socket_dir)},
                'authentication': {'superuser': {'username': 'postgres', 'password': 'bench'},
                                   'replication': {'username': 'postgres', 'password': 'bench'}},
                'pg_hba': trust,
            },
        }

    def start(self, i: int):
        self.daemons[i] = popen_as_pg(['patroni', self.confs[i]], log=self.sb.path(f'patroni{i}.log'))

    def daemon_log(self, i: int) -> str:
        return self.sb.path(f'patroni{i}.log').read_text(errors='replace')
