#!/usr/bin/env python3
"""End to end: repmgr standby switchover on real servers, with repmgrd on every node.

One cluster for the whole file (each test leaves node1 the primary, node2 and node3 its
streaming standbys): three nodes, quorum synchronous replication on every node
(ANY 1 of the others), a daemon on each, archive_mode on with an archive_command that
the test can hold (a WAL segment waiting for it holds the primary's fast shutdown).

  1. --dry-run prints each check and the plan, as text and as JSON, and changes nothing;
  2. refusals (exit 1) change nothing: run on the primary; on a standby whose WAL
     receiver lags more than a segment; on a standby whose repmgrd is not running; when
     the primary's repmgrd is not running; while another switchover request is active;
  3. under pgbench load and an acknowledging writer, node2 takes over: zero acknowledged
     rows lost, at most one writable node at every sample, node1 and node3 stream from
     node2 and replay a fresh write, the metadata says so; then the same command on node1
     switches back, under load again;
  4. aborts (exit 4) leave node1 the one writable primary and lose nothing, and the
     command names each node's state: the primary does not stop within
     shutdown_check_timeout (its archiver held, which a fast shutdown waits for); the
     candidate frozen (SIGSTOP of its postmaster and children) during the primary's
     shutdown; the candidate killed -9 then.

No fixed sleeps: every wait is on a condition.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (AckWriter, DaemonCluster, TwoPrimaries, output, pgbench_load, pgrm,  # noqa: E402
                     receiver, setup_three, wait_streaming_from, wait_until, writable)

SHUTDOWN_CHECK_TIMEOUT = 8   # s, every node's: a clean shutdown of pgbench -s 1 takes ~1 s
ABORTED = 4                   # ERR_NO_RESTART: the promotion did not happen
SYNC = 'ANY 1 (node1, node2, node3)'


# --------------------------------------------------------------------------------------
# The one cluster


_shared: list = []   # [DaemonCluster] once built


def _build() -> DaemonCluster:
    sb = harness.Sandbox()
    c = DaemonCluster(sb)
    _shared.append(c)
    sb.on_cleanup(c.close)  # at the latest when the harness cleans up at exit
    c.hold = sb.path('archive-hold')
    setup_three(c, node_settings={i: {'shutdown_check_timeout': SHUTDOWN_CHECK_TIMEOUT} for i in (1, 2, 3)},
                extra_conf={'archive_mode': 'on',
                            'archive_command': f'while test -e {c.hold}; do sleep 0.1; done'})
    # Whichever node is the primary, a commit waits for one of the others to flush it.
    for n in c.nodes.values():
        n.psql(f"alter system set synchronous_standby_names = '{SYNC}'")
        n.psql('alter system set synchronous_commit = on')
        n.psql('select pg_reload_conf()')
    n1 = c.nodes[1]
    wait_until(lambda: n1.psql("select application_name, sync_state from pg_stat_replication "
                               "order by 1") == 'node2|quorum\nnode3|quorum',
               what='node2 and node3 as quorum synchronous standbys')
    n1.psql('create table acks(i int primary key)', db='pgbench')
    n1.psql('create table fresh(i int primary key)', db='pgbench')
    return c


@contextlib.contextmanager
def cluster():
    """The file's cluster, node1 its primary (built by the first test; a test that fails
    leaves it to be built anew), its logs on failure."""
    c = _shared[0] if _shared else None
    try:
        if c is None:
            c = _build()
        yield c
    except BaseException:
        if c is not None:
            c.dump()
            c.sb.dump_logs()
            c.close()
            c.sb.cleanup()
            _shared.clear()
        raise


def switchover(c: DaemonCluster, node: int, *args, check: int | None = 0) -> dict:
    """repmgr -f confN --json standby switchover ARGS; its JSON document."""
    proc = pgrm('-f', c.confs[node], '--json', 'standby', 'switchover', *args, check=check, timeout=300)
    return harness.parse_json(proc, 'standby switchover --json')


def checks(doc: dict) -> dict:
    return {ch['check']: ch['ok'] for ch in doc['data']['checks']}


def ready(c: DaemonCluster, candidate: int, timeout: float = 60):
    """Waits until every check of a switchover to candidate holds (its --dry-run)."""
    last = {}

    def holds():
        doc = switchover(c, candidate, '--dry-run', check=None)
        last['doc'] = doc
        return doc['exit_code'] == 0
    try:
        wait_until(holds, timeout=timeout, interval=0.5, what=f"node{candidate}'s switchover checks to hold")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{last.get('doc', {}).get('data')}") from None


def roles(c: DaemonCluster) -> dict:
    return {i: ('primary' if writable(n) else 'standby') for i, n in c.nodes.items()}


def metadata(inst: harness.Instance) -> str:
    return inst.psql("select id, type, active, coalesce(upstream_node_id, 0) from repmgr_test.repl_nodes "
                     "order by id", db='pgbench')


def requests(inst: harness.Instance) -> str:
    """'id|primary|candidate|state' of every switchover request."""
    return inst.psql("select id, primary_node_id, candidate_node_id, state from repmgr_test.switchover "
                     "order by id", db='pgbench')


def events(inst: harness.Instance, successful: bool) -> int:
    return int(inst.psql("select count(*) from repmgr_test.events where event = 'standby_switchover' "
                         f"and successful = {str(successful).lower()}", db='pgbench'))


def snapshot(c: DaemonCluster) -> dict:
    """What a refusal must not change: roles, who streams from where, the metadata."""
    n1 = c.nodes[1]
    return {'roles': roles(c), 'receivers': {i: receiver(c.nodes[i]).split('|')[-1] for i in (2, 3)},
            'metadata': metadata(n1), 'requests': requests(n1), 'events': (events(n1, True), events(n1, False))}


def node1_primary(c: DaemonCluster):
    """node1 the one writable node, node2 and node3 streaming from it, the metadata so."""
    n1 = c.nodes[1]
    wait_until(lambda: roles(c) == {1: 'primary', 2: 'standby', 3: 'standby'}, timeout=60,
               what='node1 the only writable node')
    for i in (2, 3):
        wait_streaming_from(c.nodes[i], n1)
    assert metadata(n1) == '1|primary|t|0\n2|standby|t|1\n3|standby|t|1', metadata(n1)


def lost(writer: AckWriter, inst: harness.Instance) -> list:
    rows = set(int(x) for x in inst.psql('select i from acks', db='pgbench').split())
    return sorted(set(writer.acked) - rows)


def fresh_write_replayed(c: DaemonCluster, primary: int):
    """A row written on primary now is replayed by every other node."""
    n = int(c.nodes[primary].psql('insert into fresh select coalesce(max(i), 0) + 1 from fresh returning i',
                                  db='pgbench').split()[0])
    for i, inst in c.nodes.items():
        if i != primary:
            wait_until(lambda inst=inst: inst.psql(f'select count(*) from fresh where i = {n}', db='pgbench') == '1',
                       what=f'{inst.name} to replay a fresh write made on node{primary}')


def logged(c: DaemonCluster, node: int, pattern: str) -> int:
    return len(re.findall(pattern, c.daemons[node].log_text()))


# --------------------------------------------------------------------------------------
# 1, 2. --dry-run, and refusals


def test_dry_run_prints_checks_and_plan_and_changes_nothing():
    with cluster() as c:
        node1_primary(c)
        ready(c, 2)
        before = snapshot(c)
        doc = switchover(c, 2, '--dry-run')
        assert doc['ok'] and doc['exit_code'] == 0, doc
        names = [ch['check'] for ch in doc['data']['checks']]
        required = ['this node is a standby', 'the primary accepts writes', 'this node streams from the primary',
                    'replication lag is small', "the primary's repmgrd runs", "this node's repmgrd runs",
                    'failover is not paused', 'no other switchover is under way']
        assert [n for n in names if n in required] == required, names
        assert all(ch['ok'] for ch in doc['data']['checks']), doc
        plan = doc['data']['plan']
        assert any('shutdown_check_timeout' in s for s in plan) and any('shutdown checkpoint' in s for s in plan), plan
        proc = pgrm('-f', c.confs[2], 'standby', 'switchover', '--dry-run', check=0)
        for name in names:
            assert re.search(rf'^{re.escape(name)}\s*\|\s*ok\s*\|', proc.stdout, re.M), f'{name!r} not ok\n{output(proc)}'
        for step in plan:
            assert step in proc.stdout, f'plan step {step!r} not printed\n{output(proc)}'
        assert snapshot(c) == before


def test_refusals_change_nothing():
    with cluster() as c:
        n1, n3 = c.nodes[1], c.nodes[3]
        node1_primary(c)
        before = snapshot(c)

        def refused(node: int, check: str) -> dict:
            doc = switchover(c, node, check=1)
            assert doc['summary'].startswith(f'standby switchover refused: {check}'), doc['summary']
            assert checks(doc)[check] is False, doc
            assert snapshot(c) == before, 'a refused switchover changed something'
            return doc

        # On the primary.
        refused(1, 'this node is a standby')

        # node3's WAL receiver frozen while node1 writes more than a segment.
        pid = int(n3.psql('select pid from pg_stat_wal_receiver'))
        frozen = harness.freeze(pid)
        try:
            for _ in range(3):
                n1.psql('insert into fresh select coalesce(max(i), 0) + 1 from fresh', db='pgbench')
                n1.psql('select pg_switch_wal()')
            doc = refused(3, 'replication lag is small')
            assert int(re.match(r'(\d+) bytes', next(ch['found'] for ch in doc['data']['checks']
                                                     if ch['check'] == 'replication lag is small')).group(1)) > 16 << 20
        finally:
            harness.thaw(frozen)
        ready(c, 3)
        before = snapshot(c)

        # node2's repmgrd not running: its monitoring rows grow old.
        c.daemons[2].stop()
        wait_until(lambda: checks(switchover(c, 2, '--dry-run', check=None))["this node's repmgrd runs"] is False,
                   what="node2's stopped repmgrd to count as not running")
        refused(2, "this node's repmgrd runs")
        c.start_daemon(2)
        ready(c, 2)

        # node1's repmgrd not running: its heartbeat grows old.
        c.daemons[1].stop()
        wait_until(lambda: checks(switchover(c, 2, '--dry-run', check=None))["the primary's repmgrd runs"] is False,
                   what="node1's stopped repmgrd to count as not running")
        refused(2, "the primary's repmgrd runs")
        c.start_daemon(1)
        ready(c, 2)

        # Another switchover's request, active (its command running, the primary's daemon
        # working on it): node1 to node3.
        n1.psql("insert into repmgr_test.switchover (primary_node_id, candidate_node_id, state, deadline) "
                "values (1, 3, 'demoting', now() + interval '10 min')", db='pgbench')
        before = snapshot(c)
        doc = refused(2, 'no other switchover is under way')
        assert re.search(r'node 1 to node 3, demoting', doc['summary']), doc['summary']
        n1.psql("update repmgr_test.switchover set state = 'aborted' where state = 'demoting'", db='pgbench')
        ready(c, 2)
        node1_primary(c)


# --------------------------------------------------------------------------------------
# 3. Under load, and back


def switch_under_load(c: DaemonCluster, old: int, new: int) -> dict:
    """node<new> takes over from node<old> under pgbench and an acknowledging writer;
    returns the command's JSON with the writer's longest refused stretch added."""
    third = ({1, 2, 3} - {old, new}).pop()
    ready(c, new)
    logs = server_logs(c.nodes[old])
    pgbench_load(c, c.nodes[old], '-c', '2', '-T', '120', '-n')
    writer = AckWriter(c.nodes[old], c.nodes[new], c.nodes[third])
    writer.start()
    try:
        wait_until(lambda: len(writer.acked) >= 20, what='20 acknowledged rows')
        with TwoPrimaries(list(c.nodes.values())) as guard:
            t0 = time.monotonic()
            doc = switchover(c, new)
            took = time.monotonic() - t0
            n = len(writer.acked)
            wait_until(lambda: len(writer.acked) >= n + 10, what=f'writes acknowledged by node{new}')
            gap = writer.longest_gap(t0, time.monotonic())
    finally:
        writer.stop()
    assert not guard.violations, f'two writable nodes: {guard.violations[:5]}'
    assert doc['ok'], doc
    print(f"# node{old} -> node{new}: command {took:.2f} s (promoted after {doc['data']['promoted_after_s']:.2f} s, "
          f"every standby streaming after {doc['data']['all_streaming_after_s']:.2f} s); writes refused for "
          f"{gap:.2f} s at most; {len(writer.acked)} acknowledged rows, {writer.failed} refused attempts", flush=True)
    want = {i: 'primary' if i == new else 'standby' for i in (1, 2, 3)}
    assert roles(c) == want, roles(c)
    wait_streaming_from(c.nodes[old], c.nodes[new])
    wait_streaming_from(c.nodes[third], c.nodes[new])
    fresh_write_replayed(c, new)
    missing = lost(writer, c.nodes[new])
    assert not missing, f'acknowledged rows lost: {missing[:20]} ({len(missing)} of {len(writer.acked)})'
    assert doc['data']['not_streaming'] == [], doc
    # The old primary checkpointed while it still accepted writes, then shut down: its
    # shutdown checkpoint, during which writes are refused, had little left to write.
    assert any(re.search(r'checkpoint starting: immediate force wait\n(?:.*\n)*?.*checkpoint starting: shutdown', text)
               for text in new_text(logs)), f'node{old} shut down without a CHECKPOINT first'
    return doc


def server_logs(inst) -> dict:
    """The server's log files (the harness's, and the one pg_ctl start writes when the
    daemon starts it) with their sizes now."""
    files = [inst.logfile, Path(inst.datadir) / 'log' / 'pgrm-server.log']
    return {f: f.stat().st_size if f.exists() else 0 for f in files}


def new_text(logs: dict) -> list:
    """What each of the files server_logs() named has had appended since."""
    out = []
    for f, size in logs.items():
        with contextlib.suppress(OSError), open(f, 'rb') as fh:
            fh.seek(size)
            out.append(fh.read().decode(errors='replace'))
    return out


def test_switchover_under_load_and_back():
    with cluster() as c:
        n1, n2 = c.nodes[1], c.nodes[2]
        node1_primary(c)
        done_before = events(n1, True)
        doc = switch_under_load(c, 1, 2)
        assert doc['data']['old_primary'] == 1 and doc['data']['primary'] == 2, doc
        assert metadata(n2) == '1|standby|t|2\n2|primary|t|0\n3|standby|t|2', metadata(n2)
        assert requests(n2).splitlines()[-1].endswith('|1|2|done'), requests(n2)
        assert events(n2, True) == done_before + 1

        # Back: the same command on node1.
        switch_under_load(c, 2, 1)
        node1_primary(c)
        assert requests(n1).splitlines()[-1].endswith('|2|1|done'), requests(n1)
        assert events(n1, True) == done_before + 2


def test_old_primary_daemon_stopped_at_once_records_its_last_state_changes_on_the_new_primary():
    """Right after a switchover, the old primary's repmgrd stopped: its last state changes,
    repmgrd_stopped the last of them, are recorded on the new primary, not sent to its own
    server (a standby by then, which refuses them as read-only)."""
    with cluster() as c:
        n1, n2 = c.nodes[1], c.nodes[2]
        node1_primary(c)
        ready(c, 2)
        since = n1.psql('select now()')
        logs = server_logs(n1)
        switchover(c, 2)
        assert c.daemons[1].stop() is not None, "node1's repmgrd did not stop"
        recorded = n2.psql("select event from repmgr_test.events where node_id = 1 and event like 'repmgrd%' "
                           f"and event_timestamp >= '{since}' order by event_timestamp, id",
                           db='pgbench').splitlines()
        refused = [line for text in new_text(logs) for line in text.splitlines() if 'read-only transaction' in line]
        assert recorded and recorded[-1] == 'repmgrd_stopped', recorded
        assert not refused, refused

        c.start_daemon(1)
        ready(c, 1)
        switchover(c, 1)
        node1_primary(c)


# --------------------------------------------------------------------------------------
# 4. Aborts


class Background(threading.Thread):
    """fn() in a thread; .result is its value once joined, .error what it raised."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: BLE001 - re-raised by outcome()
            self.error = e

    def outcome(self, timeout: float = 300):
        self.join(timeout)
        assert not self.is_alive(), 'the switchover command did not end'
        if self.error is not None:
            raise self.error
        return self.result


def hold_archiver(c: DaemonCluster):
    """node1's archive_command waits while the hold file exists; a WAL segment ready for
    it makes node1's fast shutdown wait for the archiver."""
    c.hold.touch()
    n1 = c.nodes[1]
    n1.psql('insert into fresh select coalesce(max(i), 0) + 1 from fresh', db='pgbench')
    n1.psql('select pg_switch_wal()')


def release_archiver(c: DaemonCluster):
    c.hold.unlink(missing_ok=True)


def text_switchover(c: DaemonCluster, node: int, check: int) -> dict:
    """The command's text output as its JSON would have it: the summary (its last line)
    and data.nodes from the lines "node N: state"."""
    lines = pgrm('-f', c.confs[node], 'standby', 'switchover', check=check, timeout=300).stdout.splitlines()
    nodes = [{'id': int(m.group(1)), 'state': m.group(2)} for m in map(re.compile(r'node (\d+): (.*)').fullmatch, lines)
             if m]
    return {'summary': lines[-1], 'data': {'nodes': nodes}}


def aborted_switchover(c: DaemonCluster, fault, undo=lambda: None, text: bool = False) -> dict:
    """A switchover to node2 under an acknowledging writer; once node1's daemon is
    stopping its server (its archiver held), fault() runs, then the archiver is let go.
    Asserts the abort: exit 4, each node's state named (in the JSON, or with text=True in
    the text output's lines), node1 the one writable primary again and every standby
    streaming from it, nothing acknowledged lost, never two writable nodes, the request
    and an event recording it."""
    n1 = c.nodes[1]
    node1_primary(c)
    ready(c, 2)
    meta, aborts = metadata(n1), events(n1, False)
    writer = AckWriter(n1, c.nodes[2], c.nodes[3])
    writer.start()
    try:
        wait_until(lambda: len(writer.acked) >= 10, what='10 acknowledged rows')
        with TwoPrimaries(list(c.nodes.values())) as guard:
            stopping = logged(c, 1, 'switchover: stopping this primary')
            t0 = time.monotonic()
            hold_archiver(c)
            try:
                command = Background(lambda: text_switchover(c, 2, ABORTED) if text else
                                     switchover(c, 2, check=ABORTED))
                wait_until(lambda: logged(c, 1, 'switchover: stopping this primary') > stopping,
                           what="node1's daemon to stop node1")
                fault()
            finally:
                release_archiver(c)
            doc = command.outcome()
            undo()
            wait_until(lambda: writable(n1), what='node1 writable again')
            n = len(writer.acked)
            wait_until(lambda: len(writer.acked) >= n + 5, timeout=60, what='writes acknowledged by node1 again')
            gap = writer.longest_gap(t0, time.monotonic())
        assert not guard.violations, f'two writable nodes: {guard.violations[:5]}'
    finally:
        writer.stop()
    print(f"# {doc['summary']}; writes refused for {gap:.1f} s at most", flush=True)
    assert doc['summary'].startswith("standby switchover: aborted by node 1's repmgrd: "), doc['summary']
    states = doc['states'] = {n['id']: n['state'] for n in doc['data']['nodes']}
    assert sorted(states) == [1, 2, 3] and states[1] == 'primary (accepts writes)' and states[3] == 'standby', states
    node1_primary(c)
    assert metadata(n1) == meta
    assert requests(n1).splitlines()[-1].endswith('|1|2|aborted'), requests(n1)
    assert events(n1, False) == aborts + 1
    missing = lost(writer, n1)
    assert not missing, f'acknowledged rows lost: {missing[:20]} ({len(missing)} of {len(writer.acked)})'
    fresh_write_replayed(c, 1)
    return doc


def test_abort_when_the_primary_does_not_stop_in_time():
    with cluster() as c:
        timeouts = logged(c, 1, 'did not shut down within')

        def archiver_held_past_the_timeout():
            wait_until(lambda: logged(c, 1, 'did not shut down within') > timeouts,
                       timeout=SHUTDOWN_CHECK_TIMEOUT + 60, what="node1's shutdown to time out")
        doc = aborted_switchover(c, archiver_held_past_the_timeout)
        assert 'shutdown_check_timeout' in doc['summary'], doc['summary']
        assert doc['states'][2] == 'standby', doc['states']


def test_abort_when_the_candidate_is_frozen():
    with cluster() as c:
        n2 = c.nodes[2]
        frozen: list = []
        doc = aborted_switchover(c, lambda: frozen.extend(harness.freeze(n2.pid())), lambda: harness.thaw(frozen))
        # node1's walsender waits for node2 to confirm the shutdown checkpoint, unless node2
        # did so before it froze: then it cannot tell whether it replayed it.
        assert re.search(r'\(shutdown_check_timeout\)|did not replay the shutdown checkpoint', doc['summary']), \
            doc['summary']
        assert doc['states'][2].startswith('not answering'), doc['states']


def test_abort_when_the_candidate_is_killed():
    with cluster() as c:
        n2 = c.nodes[2]
        doc = aborted_switchover(c, n2.kill9, n2.start, text=True)
        assert 'did not replay the shutdown checkpoint' in doc['summary'], doc['summary']
        assert doc['states'][2].startswith('not answering'), doc['states']


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
