"""The chaos suite: five real PostgreSQL servers, each with its repmgrd (build/cmd/repmgrd),
each on its own host (a network namespace with its own address on one Linux bridge,
harness.Bridge), a client outside them all, and faults (nemeses) injected one after the
other into the same cluster. Python 3 standard library only; libpq through ctypes.

What runs during every fault:

- The workload: one client inserting unique ids into chaos_acks through a multi-host
  connection string (every node's address, target_session_attrs=read-write), over the
  bridge, as an application would; an id counts as acknowledged when its INSERT (an
  autocommit transaction) returned success. Every node has synchronous_standby_names =
  'ANY <quorum> (node1, ..., node5)' in its own postgresql.conf, so a promoted standby
  keeps it. The default quorum is 2, a majority of five with the primary: an
  acknowledged commit is then on three nodes, and every majority holds one of them.
  With ANY 1 an acknowledged commit may be on the primary and one standby only, both on
  the minority side of a 2 | 3 split, and the majority promotes without it (bench/chaos.py
  --quorum 1 --faults split-primary-minority lost 127 acknowledged writes in one round).
- The sampler: a session per node through its Unix socket (reached from any namespace:
  the sampler sees an isolated node too), which every 50 ms tick runs
      insert into chaos_probe select 1 where false
  A node "accepts writes" in a tick when that INSERT, sent at the tick's start (the
  same instant for every node), succeeded and was answered within 0.5 s: its server is
  up, out of recovery, not read-only (a fenced primary has default_transaction_read_only
  = on) and not stopped (fence = shutdown), for PostgreSQL checks all that when the
  INSERT starts, rows or none; so a transaction writing there would commit locally,
  which is what two primaries means (the wait for the synchronous standbys comes after
  the local commit, and a cancelled wait leaves the commit in place). Inserting no row
  takes no transaction ID and writes no WAL: the probe changes nothing it measures (a
  rolled-back row would write WAL on an isolated primary, WAL the standbys get when the
  partition heals). A split-brain instant is a tick in which two or more nodes
  accepted writes. Two probes sent at the same instant and answered within 0.5 s ran
  less than 0.5 s apart, so a node fenced more than 0.5 s before another one was
  promoted never shows as two writers. A probe answered later
  (a frozen server, a very loaded machine) says nothing about its tick and is counted
  as late.
- The checkers, after the fault healed: every acknowledged id is on the primary; one
  primary and every other node streaming from it, without an operator; where the
  cluster needs one (a former primary, fenced or with its server down, or a standby whose
  daemon says needs_rejoin, its WAL past the new primary's fork, waits for a `node
  rejoin`: pgrm does not rejoin by itself), the run prints what the operator must
  do and which state said so, counts it, and does it (node rejoin), so the next fault
  starts from five nodes again. A node that is neither converged nor in a state naming
  what to do is a failure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import re
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'e2e'))
import harness  # noqa: E402
from harness import pgrm, wait_until  # noqa: E402

# --------------------------------------------------------------------------------------
# libpq through ctypes: what psql cannot give, a session kept open and a deadline on
# every query (a frozen server answers nothing, and libpq itself would wait forever)

_pq = None


def _libpq():
    global _pq
    if _pq is None:
        lib = ctypes.CDLL(ctypes.util.find_library('pq') or 'libpq.so.5')
        vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, res, args in (('PQconnectdb', vp, [cp]), ('PQstatus', ci, [vp]),
                                ('PQerrorMessage', cp, [vp]), ('PQfinish', None, [vp]),
                                ('PQsendQuery', ci, [vp, cp]), ('PQsocket', ci, [vp]),
                                ('PQconsumeInput', ci, [vp]), ('PQisBusy', ci, [vp]),
                                ('PQgetResult', vp, [vp]), ('PQresultStatus', ci, [vp]),
                                ('PQresultErrorMessage', cp, [vp]), ('PQntuples', ci, [vp]),
                                ('PQgetvalue', cp, [vp, ci, ci]), ('PQclear', None, [vp])):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        lib.PQsetNoticeProcessor.restype = vp
        lib.PQsetNoticeProcessor.argtypes = [vp, _NOTICE_PROCESSOR, vp]
        _pq = lib
    return _pq


_NOTICE_PROCESSOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_ignore_notice = _NOTICE_PROCESSOR(lambda arg, message: None)   # libpq prints them to stderr


class PqError(Exception):
    """A failed connection or query; broken: the session is unusable (closed)."""

    def __init__(self, message: str, broken: bool):
        super().__init__(message.strip())
        self.broken = broken


class Session:
    """One libpq session: connect() with the conninfo's connect_timeout, query() with a
    deadline after which the session is closed (PqError, broken)."""

    _OK = (1, 2)   # PGRES_COMMAND_OK, PGRES_TUPLES_OK

    def __init__(self, conninfo: str):
        pq = _libpq()
        self.conn = pq.PQconnectdb(conninfo.encode())
        if self.conn:
            pq.PQsetNoticeProcessor(self.conn, _ignore_notice, None)
        if pq.PQstatus(self.conn) != 0:
            message = (pq.PQerrorMessage(self.conn) or b'').decode(errors='replace')
            pq.PQfinish(self.conn)
            self.conn = None
            raise PqError(message or 'connection failed', broken=True)

    def query(self, sql: str, timeout: float) -> list:
        """The rows (lists of str) of the last result; PqError on any error."""
        pq = _libpq()
        if self.conn is None:
            raise PqError('session closed', broken=True)
        if not pq.PQsendQuery(self.conn, sql.encode()):
            self._broken()
        deadline = time.monotonic() + timeout
        sock = pq.PQsocket(self.conn)
        while True:
            if not pq.PQconsumeInput(self.conn):
                self._broken()
            if not pq.PQisBusy(self.conn):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise PqError(f'no answer within {timeout} s', broken=True)
            select.select([sock], [], [], left)
        rows, error = [], None
        while True:
            res = pq.PQgetResult(self.conn)
            if not res:
                break
            if pq.PQresultStatus(res) not in self._OK:
                error = error or (pq.PQresultErrorMessage(res) or b'').decode(errors='replace')
            else:
                rows = [[(pq.PQgetvalue(res, r, 0) or b'').decode()] for r in range(pq.PQntuples(res))]
            pq.PQclear(res)
        if error is not None:
            broken = pq.PQstatus(self.conn) != 0
            if broken:
                self.close()
            raise PqError(error, broken=broken)
        return rows

    def _broken(self):
        message = (_libpq().PQerrorMessage(self.conn) or b'').decode(errors='replace')
        self.close()
        raise PqError(message or 'connection lost', broken=True)

    def close(self):
        if self.conn is not None:
            _libpq().PQfinish(self.conn)
            self.conn = None


# --------------------------------------------------------------------------------------
# The cluster


class Timings:
    """The daemons' timers and how long the run waits. short: the CI round."""

    def __init__(self, short: bool):
        self.daemon = dict(harness.DAEMON_FAST)   # monitor 1 s, 2 attempts 1 s apart
        m, a, i = (self.daemon[k] for k in ('monitor_interval_secs', 'reconnect_attempts',
                                            'reconnect_interval'))
        self.window = a * i + m                   # repmgrd(8)'s failover window
        self.hold = self.window + 3               # a fault that should not fail over lasts this
        self.failover_bound = 30 if short else 60  # waiting for a new primary
        self.converge_bound = 20 if short else 30  # after the heal, without an operator
        self.flaps = 3 if short else 6


class Node:
    def __init__(self, nid: int, inst: harness.Instance, host: harness.Namespace, address: str):
        self.id, self.name, self.inst, self.host, self.address = nid, f'node{nid}', inst, host, address
        self.conf: Path | None = None
        self.daemon: harness.Daemon | None = None

    def __repr__(self):
        return self.name

    def socket_conninfo(self, app: str) -> str:
        return (f'host={self.inst.socket_dir} port={self.inst.port} dbname=pgbench user=postgres '
                f'connect_timeout=2 application_name={app}')


def _daemon_state(node: Node) -> str:
    """The last state node's daemon logged it entered ('' when none yet)."""
    text = node.daemon.log_text() if node.daemon else ''
    found = re.findall(r'state \S+ -> (\S+?):', text)
    return found[-1] if found else ''


class ChaosCluster:
    """Five nodes on a bridge: node1 the primary, node2..5 its standbys, a daemon each.

    dcs = 'etcd': the daemons hold the leader key in a three-member etcd (harness.EtcdCluster)
    whose members run on three hosts of their own on the same bridge (bridge.hosts[count:],
    etcd_hosts), the way the nodes reach each other. Which faults cut a node off from etcd
    follows from that: a link taken out (isolate-primary, isolate-standby, flapping-link)
    cuts the node off from etcd too; a split (_partition) puts etcd's members on the side
    of the most nodes, so a node cut off from the majority is cut off from etcd as well; a
    partial partition leaves etcd reachable from every node, as its middle node is; the
    faults on processes (kill-postmaster, host-loss, sigstop-primary,
    daemon-killed-in-election) leave every path up, the lost host's own etcd member
    included (etcd runs elsewhere)."""

    def __init__(self, sb: harness.Sandbox, t: Timings, count: int = 5, quorum: int = 2,
                 fsync: bool = True, dcs: str = 'none'):
        self.sb, self.t, self.quorum, self.dcs = sb, t, quorum, dcs
        members = 3 if dcs == 'etcd' else 0
        self.bridge = harness.Bridge(sb, count + members)
        self.etcd_hosts = list(range(count, count + members))   # bridge indexes of etcd's members
        self.etcd = (harness.EtcdCluster(sb, hosts=[(self.bridge.hosts[i], self.bridge.addresses[i])
                                                    for i in self.etcd_hosts])
                     if members else None)
        self.dc = harness.DaemonCluster(sb)
        sb.on_cleanup(self.dc.close)
        self.nodes: list = []
        names = ', '.join(f'node{i + 1}' for i in range(count))
        self.sync_names = f'ANY {quorum} ({names})'
        self.conf = {'shared_buffers': '16MB', 'max_connections': 40, 'fsync': fsync,
                     'synchronous_commit': 'on', 'wal_receiver_timeout': '5s',
                     'wal_sender_timeout': '5s', 'wal_retrieve_retry_interval': '1s',
                     'checkpoint_timeout': '5min'}
        for i in range(count):
            inst = self.sb.new_instance(f'node{i + 1}')
            inst.netns = self.bridge.hosts[i]
            self.nodes.append(Node(i + 1, inst, self.bridge.hosts[i], self.bridge.addresses[i]))

    def own_conf(self, n: Node) -> dict:
        """What each node says for itself in its postgresql.conf (a clone copies node1's)."""
        return {'port': n.inst.port, 'listen_addresses': n.address,
                'unix_socket_directories': str(n.inst.socket_dir)}

    def setup(self):
        n1 = self.nodes[0]
        n1.inst.initdb({**self.conf, **self.own_conf(n1)})
        self.bridge.trust(n1.inst)   # the clones copy its pg_hba.conf
        n1.inst.start()
        n1.inst.psql('create database pgbench')
        n1.inst.psql('create table chaos_acks(id bigint primary key); '
                     'create table chaos_probe(x int)', db='pgbench')
        dcs = {'dcs': 'etcd', 'etcd_endpoints': self.etcd.endpoints} if self.etcd else {}
        for n in self.nodes:
            n.conf = harness.write_daemon_conf(
                self.sb, n.id, n.inst, **self.t.daemon, **dcs,
                conninfo=f'host={n.address} port={n.inst.port} user=postgres dbname=pgbench '
                         'connect_timeout=2')
            self.dc.confs[n.id] = n.conf
            self.dc.nodes[n.id] = n.inst
        pgrm('-f', n1.conf, 'master', 'register', check=0, netns=n1.host)
        for n in self.nodes[1:]:
            pgrm('-f', n.conf, '-D', n.inst.datadir, '-d', 'pgbench', '-p', n1.inst.port,
                 '-U', 'postgres', 'standby', 'clone', n1.address, check=0, netns=n.host)
            n.inst.append_conf({**self.own_conf(n), 'synchronous_standby_names': self.sync_names},
                               header='pgrm chaos: this node')
            n.inst.start()
        for n in self.nodes[1:]:
            harness.wait_streaming(n.inst)
        n1.inst.append_conf({'synchronous_standby_names': self.sync_names}, header='pgrm chaos')
        n1.inst.psql('select pg_reload_conf()')
        wait_until(lambda: n1.inst.psql("select count(*) from pg_stat_replication "
                                        "where sync_state = 'quorum'") == str(len(self.nodes) - 1),
                   what='every standby a quorum synchronous standby')
        for n in self.nodes[1:]:
            pgrm('-f', n.conf, 'standby', 'register', check=0, netns=n.host)
        for n in self.nodes:
            self.start_daemon(n)
        self.nodes[0].daemon.wait_log('this node is the primary')
        wait_until(lambda: n1.inst.psql('select count(distinct standby_node) from repmgr_test.repl_monitor',
                                        db='pgbench') == str(len(self.nodes) - 1),
                   timeout=60, what='monitoring rows of every standby')

    def start_daemon(self, n: Node):
        n.daemon = self.dc.start_daemon(n.id, netns=n.host)

    def kill_daemon(self, n: Node):
        """kill -9 of n's daemon alone (what it started goes on, as on a real host)."""
        try:
            os.kill(n.daemon.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        n.daemon.proc.wait(10)

    def writable(self) -> list:
        return [n for n in self.nodes if harness.writable(n.inst)]

    def multi_host(self) -> str:
        return (f"host={','.join(n.address for n in self.nodes)} "
                f"port={','.join(str(n.inst.port) for n in self.nodes)} dbname=pgbench user=postgres "
                'target_session_attrs=read-write connect_timeout=2 application_name=chaos_client')

    def upstream_port(self, n: Node) -> int | None:
        """The port n's WAL receiver streams from (None: not streaming)."""
        try:
            text = n.inst.psql("select sender_port from pg_stat_wal_receiver where status = 'streaming'",
                               timeout=10)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return None
        return int(text) if text else None

    def lagging(self, primary: Node) -> list:
        """Nodes other than primary not streaming from it."""
        return [n for n in self.nodes if n is not primary and self.upstream_port(n) != primary.inst.port]

    def converged(self) -> Node | None:
        """The primary when exactly one node accepts writes and every other streams from it."""
        w = self.writable()
        if len(w) == 1 and not self.lagging(w[0]):
            return w[0]
        return None


# --------------------------------------------------------------------------------------
# The workload and the sampler


class Writer(threading.Thread):
    """Inserts ids 1, 2, ... through the multi-host connection string; acked holds
    (id, time.monotonic()) of every INSERT that returned success."""

    def __init__(self, conninfo: str):
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.acked: list = []
        self.attempts = 0
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        session, next_id = None, 0
        while not self.stop_event.is_set():
            if session is None:
                try:
                    session = Session(self.conninfo)
                except PqError:
                    self.stop_event.wait(0.1)
                    continue
            next_id += 1
            self.attempts += 1
            try:
                session.query(f'insert into chaos_acks values ({next_id})', timeout=5)
                with self.lock:
                    self.acked.append((next_id, time.monotonic()))
                self.stop_event.wait(0.01)
            except PqError:
                # A read-only or broken session: connect again, which finds the primary.
                session.close()
                session = None
                self.stop_event.wait(0.05)
        if session is not None:
            session.close()

    def acked_ids(self) -> set:
        with self.lock:
            return {i for i, _ in self.acked}

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time without an acknowledgement within [since, until]."""
        with self.lock:
            times = [since] + [t for _, t in self.acked if since < t < until] + [until]
        return max(b - a for a, b in zip(times, times[1:]))

    def stop(self):
        self.stop_event.set()
        self.join(30)


class Sampler:
    """Every TICK seconds, asks every node through its Unix socket whether a write would
    commit there (see the module's docstring). writable[node id] maps a tick's index to
    True (it took the write) or False (refused, or no session); not answered within
    ANSWER seconds: no entry."""

    TICK = 0.05
    ANSWER = 0.5
    PROBE = 'insert into chaos_probe select 1 where false'
    # A standby refuses the probe 20 times a second: not in the server's log.
    QUIET = " options='-c log_min_messages=fatal -c log_min_error_statement=panic'"

    def __init__(self, nodes: list):
        self.nodes = nodes
        self.t0 = time.monotonic()
        self.writable = {n.id: {} for n in nodes}
        self.late = {n.id: 0 for n in nodes}
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in nodes]
        for th in self.threads:
            th.start()

    def tick_of(self, t: float) -> int:
        return int((t - self.t0) / self.TICK)

    def time_of(self, k: int) -> float:
        return self.t0 + k * self.TICK

    def _run(self, n: Node):
        session, k = None, self.tick_of(time.monotonic()) + 1
        seen = self.writable[n.id]
        while not self.stop_event.is_set():
            start = self.time_of(k)
            delay = start - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            took = False
            try:
                if session is None:
                    session = Session(n.socket_conninfo('chaos_sampler') + self.QUIET)
                session.query(self.PROBE, timeout=1.0)
                took = True
            except PqError as e:
                if e.broken:
                    session = None
            now = time.monotonic()
            if now < start + self.ANSWER:
                seen[k] = took
            else:
                self.late[n.id] += 1
            k = max(k + 1, self.tick_of(now) + 1)
        if session is not None:
            session.close()

    def writers_at(self, k: int) -> list:
        return [n for n in self.nodes if self.writable[n.id].get(k)]

    def split_brain(self, since: float, until: float) -> list:
        """(time, [nodes]) of every tick within [since, until] in which two or more nodes
        accepted writes."""
        return [(self.time_of(k), w) for k in range(self.tick_of(since), self.tick_of(until) + 1)
                for w in [self.writers_at(k)] if len(w) > 1]

    def latest_writers(self, age: float = 0.5) -> set:
        """Nodes that accepted writes in any tick of the last `age` seconds."""
        now = self.tick_of(time.monotonic())
        return {n for k in range(now - int(age / self.TICK), now + 1) for n in self.writers_at(k)}

    def stop(self):
        self.stop_event.set()
        for th in self.threads:
            th.join(10)


# --------------------------------------------------------------------------------------
# The faults. Each takes the run and the primary, injects, waits as its kind needs,
# heals, and returns notes for the report.


def _wait_new_primary(run: 'Run', old: Node) -> Node | None:
    try:
        return wait_until(lambda: next(iter(run.sampler.latest_writers() - {old}), None),
                          timeout=run.t.failover_bound, interval=0.05,
                          what=f'a node other than {old.name} to accept writes')
    except AssertionError:
        return None


def kill_postmaster(run, p):
    p.inst.kill9()
    _wait_new_primary(run, p)


def host_loss(run, p):
    run.c.kill_daemon(p)
    p.inst.kill9()
    _wait_new_primary(run, p)
    run.c.start_daemon(p)   # the host is back: its daemon starts, its server does not


def sigstop_primary(run, p):
    pids = harness.freeze(p.inst.pid())
    try:
        t_stop = time.monotonic()
        _wait_new_primary(run, p)
        time.sleep(max(0.0, t_stop + run.t.window + 1 - time.monotonic()))   # longer than the window
    finally:
        harness.thaw(pids)


def isolate_primary(run, p):
    run.c.bridge.link(p.id - 1, False)
    try:
        _wait_new_primary(run, p)
    finally:
        run.c.bridge.link(p.id - 1, True)


def isolate_standby(run, p):
    s = random.choice([n for n in run.c.nodes if n is not p])
    run.c.bridge.link(s.id - 1, False)
    try:
        time.sleep(run.t.hold)
    finally:
        run.c.bridge.link(s.id - 1, True)
    return f'{s.name} isolated'


def _partition(run, sides: list, hold_until_failover_from: Node | None):
    """Drops every packet between each pair of sides (a side is a list of nodes), then
    holds: until a node other than hold_until_failover_from accepts writes (if given),
    else run.t.hold seconds. etcd's members (dcs = etcd) are on the side of the most
    nodes: the nodes of every other side are cut off from them too."""
    b = run.c.bridge
    with_etcd = max(sides, key=len)
    try:
        for side in sides:
            others = [o.id - 1 for s2 in sides if s2 is not side for o in s2]
            if side is not with_etcd:
                others += run.c.etcd_hosts
            for n in side:
                b.block(n.id - 1, others)
        if hold_until_failover_from is not None:
            _wait_new_primary(run, hold_until_failover_from)
        else:
            time.sleep(run.t.hold)
    finally:
        for n in run.c.nodes:
            b.unblock(n.id - 1)


def split_primary_minority(run, p):
    standbys = [n for n in run.c.nodes if n is not p]
    random.shuffle(standbys)
    minority = [p, standbys[0]]
    _partition(run, [minority, standbys[1:]], hold_until_failover_from=p)
    return f'{"+".join(n.name for n in minority)} | {"+".join(n.name for n in standbys[1:])}'


def split_primary_majority(run, p):
    standbys = [n for n in run.c.nodes if n is not p]
    random.shuffle(standbys)
    majority = [p, *standbys[:2]]
    _partition(run, [majority, standbys[2:]], hold_until_failover_from=None)
    return f'{"+".join(n.name for n in majority)} | {"+".join(n.name for n in standbys[2:])}'


def partial_partition(run, p):
    """{primary, a standby} and {two standbys} do not see each other; the fifth node sees
    both sides."""
    standbys = [n for n in run.c.nodes if n is not p]
    random.shuffle(standbys)
    a, b, middle = [p, standbys[0]], standbys[1:3], standbys[3]
    br = run.c.bridge
    try:
        for n in a:
            br.block(n.id - 1, [o.id - 1 for o in b])
        for n in b:
            br.block(n.id - 1, [o.id - 1 for o in a])
        time.sleep(run.t.hold)
    finally:
        for n in run.c.nodes:
            br.unblock(n.id - 1)
    return f'{"+".join(n.name for n in a)} | {"+".join(n.name for n in b)}, {middle.name} sees both'


def flapping_link(run, p):
    """The primary's link goes down and up, each for a random 0.5 to 2 windows."""
    spans = []
    try:
        for _ in range(run.t.flaps):
            down, up = (random.uniform(0.5, 2) * run.t.window for _ in range(2))
            spans.append(f'{down:.1f}/{up:.1f}')
            run.c.bridge.link(p.id - 1, False)
            time.sleep(down)
            run.c.bridge.link(p.id - 1, True)
            time.sleep(up)
    finally:
        run.c.bridge.link(p.id - 1, True)
    return 'down/up s: ' + ' '.join(spans)


def daemon_killed_in_election(run, p):
    """kill -9 of the primary's postmaster, then of the first standby daemon to enter the
    election; that daemon is started again once a new primary accepts writes."""
    standbys = [n for n in run.c.nodes if n is not p]
    offsets = {n.id: len(n.daemon.log_text()) for n in standbys}
    p.inst.kill9()

    def electing():
        return next((n for n in standbys
                     if re.search(r'-> electing', n.daemon.log_text()[offsets[n.id]:])), None)
    try:
        victim = wait_until(electing, timeout=run.t.failover_bound, interval=0.02,
                            what='a standby daemon to enter the election')
    except AssertionError:
        return 'no standby daemon entered an election'
    run.c.kill_daemon(victim)
    _wait_new_primary(run, p)
    run.c.start_daemon(victim)
    return f"{victim.name}'s daemon killed while electing"


FAULTS = {
    'kill-postmaster': kill_postmaster,
    'host-loss': host_loss,
    'sigstop-primary': sigstop_primary,
    'isolate-primary': isolate_primary,
    'isolate-standby': isolate_standby,
    'split-primary-minority': split_primary_minority,
    'split-primary-majority': split_primary_majority,
    'partial-partition': partial_partition,
    'flapping-link': flapping_link,
    'daemon-killed-in-election': daemon_killed_in_election,
}

# Faults known to fail on main, each with why: their failures are printed as KNOWN
# FAILURE and counted, and do not fail the run; a fault listed here that passes says so.
# Lost acknowledged writes are never excused. Remove an entry with the fix that makes its
# fault pass.
KNOWN_FAILURES: dict = {}
# The same with dcs = etcd (ChaosCluster(dcs='etcd')).
KNOWN_FAILURES_ETCD: dict = {}


# --------------------------------------------------------------------------------------
# A run


class Round:
    def __init__(self, number: int, fault: str, primary: Node):
        self.number, self.fault, self.primary = number, fault, primary
        self.new_primary: Node | None = None
        self.note = ''
        self.split_brain: list = []
        self.lost: list = []
        self.unavailable = 0.0
        self.operator: list = []     # what the operator had to do, and the state that said so
        self.failures: list = []
        self.seconds = 0.0


class Run:
    """A cluster set up once (start()), the workload and the sampler running, faults one
    after the other (round()). A round after which the cluster cannot be brought back,
    even by the operator's rejoins, is reported, and the cluster is built again (in a new
    sandbox) when a next round comes. out: where the report goes."""

    def __init__(self, short: bool, quorum: int = 2, fsync: bool = True, out=sys.stdout, dcs: str = 'none'):
        self.t = Timings(short)
        self.out, self.quorum, self.fsync, self.dcs = out, quorum, fsync, dcs
        self.known = KNOWN_FAILURES_ETCD if dcs == 'etcd' else KNOWN_FAILURES
        self.sb: harness.Sandbox | None = None
        self.c: ChaosCluster | None = None
        self.rounds: list = []
        self.writer: Writer | None = None
        self.sampler: Sampler | None = None
        self.builds = 0
        self.acked = self.attempts = self.probes = self.late = 0   # of the clusters stopped

    def say(self, text: str):
        print(text, file=self.out, flush=True)

    def _excused(self, fault: str, failure: str) -> bool:
        return fault in self.known and 'acknowledged ids missing' not in failure

    def start(self):
        t0 = time.monotonic()
        self.sb = harness.Sandbox(prefix='pgrm-chaos-')
        self.c = ChaosCluster(self.sb, self.t, quorum=self.quorum, fsync=self.fsync, dcs=self.dcs)
        self.c.setup()
        self.builds += 1
        self.sampler = Sampler(self.c.nodes)
        self.writer = Writer(self.c.multi_host())
        self.writer.start()
        wait_until(lambda: len(self.writer.acked) >= 10, timeout=30, what='the workload acknowledged')
        self.say(f'# five nodes on bridge {self.c.bridge.name}, synchronous_standby_names = '
                 f"'{self.c.sync_names}', fsync = {'on' if self.fsync else 'off'}, "
                 f'daemon {self.t.daemon}, failover window {self.t.window} s, dcs = {self.dcs}'
                 f'{" (three members on hosts of their own on the bridge)" if self.c.etcd else ""}; '
                 f'set up in {time.monotonic() - t0:.1f} s')

    def stop(self):
        """Stops the workload, the sampler, and the cluster (its sandbox: servers,
        daemons, namespaces)."""
        if self.writer:
            self.writer.stop()
            self.acked += len(self.writer.acked)
            self.attempts += self.writer.attempts
            self.writer = None
        if self.sampler:
            self.sampler.stop()
            self.probes += sum(len(v) for v in self.sampler.writable.values())
            self.late += sum(self.sampler.late.values())
            self.sampler = None
        if self.sb:
            self.sb.cleanup()
            self.sb = None
        self.c = None

    def round(self, fault: str) -> Round:
        if self.c is None:
            self.say('# building the cluster again')
            self.start()
        primary = self._still_converged()
        if primary is None:
            self.stop()
            self.say('# building the cluster again')
            self.start()
            primary = self.c.converged()
            assert primary, 'a cluster built again is not converged'
        r = Round(len(self.rounds) + 1, fault, primary)
        self.rounds.append(r)
        t_fault = time.monotonic()
        r.note = FAULTS[fault](self, primary) or ''
        t_healed = time.monotonic()
        try:
            self._converge(r)
        except Exception as e:  # noqa: BLE001 - whatever stopped it, report it and rebuild
            r.failures.append(f'the cluster could not be brought back: {type(e).__name__}: {e}')
            r.seconds = time.monotonic() - t_fault
            r.split_brain = self.sampler.split_brain(t_fault, time.monotonic())
            r.unavailable = self.writer.longest_gap(t_fault, time.monotonic())
            self._report(r, t_fault, t_healed)
            self.stop()
            return r
        t_end = time.monotonic()
        r.seconds = t_end - t_fault
        r.split_brain = self.sampler.split_brain(t_fault, t_end)
        r.unavailable = self.writer.longest_gap(t_fault, t_end)
        self._check_acks(r)
        if r.split_brain:
            t, w = r.split_brain[0]
            r.failures.append(f'{len(r.split_brain)} split-brain instants, the first '
                              f'{t - t_fault:.2f} s after the fault: {", ".join(n.name for n in w)} '
                              'accepted writes in the same tick')
        self._report(r, t_fault, t_healed)
        return r

    def _still_converged(self) -> Node | None:
        """The primary, when the cluster the last round left converged still is (a
        walreceiver that reconnects gets converge_bound seconds); else None, and the last
        round fails with what each node says: it came apart after the round."""
        try:
            return wait_until(self.c.converged, timeout=self.t.converge_bound, interval=0.5,
                              what='the cluster the last round left converged, still converged')
        except AssertionError:
            if not self.rounds:
                raise
            last = self.rounds[-1]
            w = self.c.writable()
            apart = [f'{len(w)} nodes accept writes ({", ".join(n.name for n in w)})'] if len(w) != 1 else [
                f'{n.name} does not stream from {w[0].name} (daemon state {_daemon_state(n) or "none"})'
                for n in self.c.lagging(w[0])]
            self._evidence(last)
            failure = f'came apart after it converged: {"; ".join(apart)}'
            last.failures.append(failure)
            self.say(f'round {last.number} {last.fault}: FAILURE: {failure}')
            return None

    def _operator_state(self, n: Node) -> str | None:
        """Why n waits for an operator, when a state says so: its daemon fenced it (a
        former primary), or its server is down and its daemon says so. None otherwise."""
        state = _daemon_state(n)
        if state == 'fenced':
            return 'fenced, daemon state fenced'
        if state == 'local_server_down' and not n.inst.is_running():
            return 'server down, daemon state local_server_down'
        if state == 'needs_rejoin':
            said = re.findall(r'state \S+ -> needs_rejoin: (.*)', n.daemon.log_text())
            return f'daemon state needs_rejoin: {said[-1] if said else ""}'
        return None

    def _settled(self):
        """(primary, [(node, why)]) once one node accepts writes and every other one
        streams from it or waits for an operator in a state that says so."""
        w = self.c.writable()
        if len(w) != 1:
            return None
        waiting = []
        for n in self.c.lagging(w[0]):
            why = self._operator_state(n)
            if why is None:
                return None
            waiting.append((n, why))
        return w[0], waiting

    def _timeline(self, n: Node) -> int:
        return int(n.inst.psql('select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)', timeout=10), 16)

    def _converge(self, r: Round):
        """Waits until the cluster settles: one primary, every other node streaming from
        it or in a state that names the operator's action (which is then taken: node
        rejoin). What does not settle is a failure, with evidence; the operator then
        rejoins the nodes in the way, so that the next fault starts from five nodes."""
        try:
            p, waiting = wait_until(self._settled, timeout=self.t.converge_bound, interval=0.5,
                                    what='one primary, every other node streaming from it or waiting for an operator')
            for n, why in waiting:
                r.operator.append(f'{n.name}: node rejoin ({why})')
        except AssertionError:
            self._evidence(r)
            w = self.c.writable()
            if not w:
                r.failures.append(f'not converged: no node accepts writes {self.t.converge_bound} s after the heal')
                raise AssertionError(f'round {r.number} {r.fault}: no primary left, the run cannot go on')
            p = max(w, key=self._timeline)
            if len(w) > 1:
                r.failures.append(f'not converged: {len(w)} nodes accept writes ({", ".join(n.name for n in w)}) '
                                  f'{self.t.converge_bound} s after the heal')
            waiting = []
            for n in self.c.lagging(p):
                why = self._operator_state(n)
                if why is None:
                    why = (f'daemon state {_daemon_state(n) or "none"}, server '
                           f'{"writable" if n in w else "running" if n.inst.is_running() else "down"}')
                    r.failures.append(f'not converged: {n.name} does not stream from {p.name} '
                                      f'and no state names the action ({why})')
                    why += ': undiagnosed'
                r.operator.append(f'{n.name}: node rejoin ({why})')
                waiting.append((n, why))
        # Former primaries first: node rejoin counts a fenced primary that still runs as
        # one that takes writes, and refuses a standby's rejoin beside it.
        for n, _ in sorted(waiting, key=lambda nw: 'needs_rejoin' in nw[1]):
            self._rejoin(n, p)
        wait_until(lambda: self.c.converged() is p, timeout=self.t.converge_bound, interval=0.5,
                   what=f'every node streaming from {p.name} after the operator')
        r.new_primary = p
        for n in self.c.nodes:
            if n.daemon is None or not n.daemon.running():
                r.failures.append(f"{n.name}'s daemon is not running: {n.daemon.tail() if n.daemon else ''}")

    def _rejoin(self, n: Node, p: Node):
        """node rejoin of n to p, as the operator would run it; tried again while it could
        not reach p at all ("No route to host": a link back up a moment ago, its host's
        neighbour entries still failed), for at most converge_bound seconds."""
        if n.inst.is_running():
            n.inst.stop()
        deadline = time.monotonic() + self.t.converge_bound
        while True:
            proc = pgrm('-f', n.conf, 'node', 'rejoin', '-h', p.address, '-p', p.inst.port, netns=n.host)
            if proc.returncode == 0 or 'No route to host' not in proc.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if proc.returncode != 0:
            raise AssertionError(f'node rejoin of {n.name} failed ({proc.returncode}): '
                                 f'{harness.output(proc)}')

    def _check_acks(self, r: Round):
        if r.new_primary is None:
            return
        acked = self.writer.acked_ids()
        s = Session(r.new_primary.socket_conninfo('chaos_checker'))
        try:
            present = {int(row[0]) for row in s.query('select id from chaos_acks', timeout=60)}
        finally:
            s.close()
        r.lost = sorted(acked - present)
        if r.lost:
            r.failures.append(f'{len(r.lost)} acknowledged ids missing on {r.new_primary.name}: '
                              f'{r.lost[:20]}')

    def _evidence(self, r: Round, *nodes: Node):
        for n in nodes or self.c.nodes:
            self.say(f'# --- evidence, round {r.number}: {n.name} (daemon state {_daemon_state(n)}) ---')
            self.say(n.daemon.tail(30) if n.daemon else '')
            self.say(n.inst.log_tail(15))

    def _report(self, r: Round, t_fault: float, t_healed: float):
        failover = (f'{r.primary.name} -> {r.new_primary.name}' if r.new_primary and r.new_primary is not r.primary
                    else 'none' if r.new_primary else '?')
        self.say(f'round {r.number} {r.fault}: {r.note + "; " if r.note else ""}healed after '
                 f'{t_healed - t_fault:.1f} s, converged after {r.seconds:.1f} s; failover {failover}; '
                 f'unavailable {r.unavailable:.2f} s; split-brain instants {len(r.split_brain)}; '
                 f'lost acknowledged writes {len(r.lost)}')
        for op in r.operator:
            self.say(f'  OPERATOR NEEDED: {op}')
        for f in r.failures:
            if self._excused(r.fault, f):
                self.say(f'  KNOWN FAILURE ({self.known[r.fault]}): {f}')
            else:
                self.say(f'  FAILURE: {f}')

    def summary(self) -> list:
        """Prints the run's figures (after stop()); returns the failures not known
        (round, text)."""
        rs = self.rounds
        failovers = sum(1 for r in rs if r.new_primary and r.new_primary is not r.primary)
        self.say(f'# faults injected: {len(rs)}')
        self.say(f'# failovers: {failovers}')
        self.say(f'# split-brain instants: {sum(len(r.split_brain) for r in rs)}')
        self.say(f'# lost acknowledged writes: {sum(len(r.lost) for r in rs)} '
                 f'(of {self.acked} acknowledged, {self.attempts} attempted)')
        self.say(f'# operator actions: {sum(len(r.operator) for r in rs)}; clusters built: {self.builds}')
        self.say(f'# sampler: {self.probes} probes answered in time, {self.late} late')
        self.say('# per fault: rounds, unavailability median/max s, failovers, operator actions')
        for fault in FAULTS:
            mine = [r for r in rs if r.fault == fault]
            if not mine:
                continue
            un = [r.unavailable for r in mine]
            self.say(f'#   {fault:<26} {len(mine):>3}  {statistics.median(un):6.2f} {max(un):6.2f}  '
                     f'{sum(1 for r in mine if r.new_primary and r.new_primary is not r.primary):>3}  '
                     f'{sum(len(r.operator) for r in mine):>3}')
        known = [(r, f) for r in rs for f in r.failures if self._excused(r.fault, f)]
        unknown = [(r, f) for r in rs for f in r.failures if not self._excused(r.fault, f)]
        if known:
            self.say(f'# KNOWN FAILURES: {len(known)} in faults {", ".join(sorted({r.fault for r, _ in known}))}')
        for fault in self.known:
            mine = [r for r in rs if r.fault == fault]
            if mine and not any(r.failures for r in mine):
                self.say(f'# known failure not seen in this run: {fault} ({len(mine)} rounds passed)')
        self.say(f'# failures: {len(unknown)}')
        return unknown
