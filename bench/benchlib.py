"""Shared helpers for pgrm's benchmarks (Python 3 standard library only).

Builds on test/e2e/harness.py: Sandbox/Instance start real PostgreSQL servers in a
throw-away directory under /tmp, run_as_pg runs a program as the postgres OS user, pgrm
runs the built binary (build/cmd/repmgr); the cluster setup steps (make_primary,
write_conf, pgbench, waiting for streaming, ...) are harness's too, shared with the e2e
tests, and re-exported here. Added here: MiniPg (a wire-protocol client, for probes that
must cost one round trip) and a three-node cluster under pgrm (PgrmCluster). See
bench/README.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'test' / 'e2e'))
import harness  # noqa: E402
from harness import (end_process_group, freeze, make_primary, parse_json, pg_bin,  # noqa: E402,F401
                     pgbench, pgbench_background, pgrm, run_as_pg, streaming, thaw,
                     wait_streaming, wait_streaming_from, wait_until, write_conf)

__all__ = ['harness', 'pg_bin', 'pgrm', 'run_as_pg', 'wait_until', 'REPO', 'make_primary',
           'pgbench', 'du_bytes', 'remove_tree', 'median', 'timed', 'parse_json', 'fmt_bytes',
           'check_binary', 'write_conf', 'end_process_group', 'freeze', 'pgbench_background',
           'streaming', 'thaw', 'wait_streaming', 'wait_streaming_from',
           'load_average', 'PgError', 'MiniPg', 'Probe', 'BenchCluster', 'PgrmCluster']


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
