#!/usr/bin/env python3
"""End to end: event notifications (event_notification_command, event_notifications).

One cluster for the whole file, harness.setup_three's (failover = automatic, the fast
timings), every node's repmgr.conf naming a notification script that appends each call's
arguments to one file, as a JSON line: %n %e %s %t %p %d. node3's event_notifications
lists a few events only.

  1. register and clone: master register, the clones and the standby registrations
     (node2's by its repmgrd) are notified with their node, success and related node,
     and so are the daemons' start and first state; node3's unlisted events are not;
  2. service pause and service unpause (daemon_pause, daemon_unpause) are notified by the
     node they were run on;
  3. a notification command that cannot be found, or that fails, is a warning and
     nothing else: the command succeeds and changes what it changes;
  4. kill -9 of the primary while node2's notifications hang (its script sleeps in a
     child for ever): node2's repmgrd goes on with the failover meanwhile; the hanging
     script and its child are killed after the event_notification timeout, and every
     later notification follows in order: each standby's failover decision with its
     reason, the promotion, the follow, each with its related node. The notifications
     sent while no primary could be written are in the events table in the end.

No fixed sleeps: every wait is on a condition.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import DaemonCluster, one_promoted, output, parse_json, pgrm, setup_three, wait_until  # noqa: E402

NOTIFICATION_TIMEOUT = 10   # s: core/timeouts.hpp's kEventNotification
# node3's event_notifications: its state changes are left out.
NODE3_EVENTS = ['standby_clone', 'standby_register', 'failover_decision', 'standby_promote', 'standby_follow']

# Appends its arguments to the calls file; then, when a file hang-<event> exists beside
# it, sleeps in a child for ever, both pids written to hang-<event>.pids.
SCRIPT = r'''#!/usr/bin/env python3
import json, os, subprocess, sys
calls = sys.argv[1]
with open(calls, 'a') as f:
    f.write(json.dumps(sys.argv[2:]) + '\n')
hang = os.path.join(os.path.dirname(calls), 'hang-' + sys.argv[3])
if os.path.exists(hang):
    child = subprocess.Popen(['sleep', '600'])
    with open(hang + '.pids', 'a') as f:
        f.write(f'{os.getpid()} {child.pid}\n')
    child.wait()
'''


# --------------------------------------------------------------------------------------
# The one cluster


_shared: list = []   # [DaemonCluster] once built


def _build() -> DaemonCluster:
    sb = harness.Sandbox()
    c = DaemonCluster(sb)
    _shared.append(c)
    sb.on_cleanup(c.close)
    c.calls = sb.path('calls.jsonl')
    script = sb.path('notify.py')
    script.write_text(SCRIPT)
    script.chmod(0o755)
    command = f"{script} {c.calls} %n %e %s %t %p %d"
    settings = {i: {'event_notification_command': command} for i in (1, 2, 3)}
    settings[3]['event_notifications'] = ','.join(NODE3_EVENTS)
    setup_three(c, node_settings=settings)
    return c


@contextlib.contextmanager
def cluster():
    """The file's cluster (built by the first test; a test that fails leaves it to be
    built anew), its logs on failure."""
    c = _shared[0] if _shared else None
    try:
        if c is None:
            c = _build()
        yield c
    except BaseException:
        if c is not None:
            c.dump()
            sys.stderr.write(f'--- notifications ---\n{c.calls.read_text() if c.calls.exists() else ""}\n')
            c.close()
            c.sb.cleanup()
            _shared.clear()
        raise


def calls(c: DaemonCluster) -> list:
    """Every notification so far: {node, event, ok, at, related, details}."""
    out = []
    for line in c.calls.read_text().splitlines():
        n, e, s, t, p, d = json.loads(line)
        out.append({'node': int(n), 'event': e, 'ok': s, 'at': t, 'related': p, 'details': d})
    return out


def of(c: DaemonCluster, node: int) -> list:
    """node's notifications in the order the events happened (%t): a command repmgrd runs
    notifies at once, repmgrd's own queue may still be behind."""
    return sorted((x for x in calls(c) if x['node'] == node), key=lambda x: x['at'])


def in_order(got: list, expected: list) -> bool:
    """expected (dicts of fields) matches a subsequence of got, in order."""
    it = iter(got)
    return all(any(all(x.get(k) == v for k, v in want.items()) for x in it) for want in expected)


def call(event: str, related: str = '', ok: str = '1') -> dict:
    return {'event': event, 'related': related, 'ok': ok}


def events_table(inst: harness.Instance, node: int) -> list:
    rows = inst.psql("select event, coalesce(related_node_id::text, '') from repmgr_test.events "
                     f"where node_id = {node} order by id", db='pgbench')
    return [tuple(r.split('|')) for r in rows.splitlines()]


def last_pause_event(inst: harness.Instance, node: int) -> str:
    return [e for e, _ in events_table(inst, node) if e.startswith('daemon_')][-1]


def pids_alive(pids: list) -> list:
    alive = []
    for pid in pids:
        try:
            with open(f'/proc/{pid}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] != 'Z':
                    alive.append(pid)
        except OSError:
            pass
    return alive


# --------------------------------------------------------------------------------------
# Tests


def test_register_and_clone_are_notified():
    with cluster() as c:
        wait_until(lambda: in_order(of(c, 2), [call('repmgrd_standby', '1')]),
                   what="node2's repmgrd_standby notification")
        one = of(c, 1)
        assert in_order(one, [call('primary_register'), call('repmgrd_starting'), call('repmgrd_primary')]), one
        register = next(x for x in one if x['event'] == 'primary_register')
        assert register['details'] == 'primary registered in cluster "test"', register
        at = datetime.datetime.fromisoformat(register['at'].replace('Z', '+00:00'))
        assert abs((datetime.datetime.now(datetime.timezone.utc) - at).total_seconds()) < 600, register
        assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', register['at']), register
        # node2: cloned from node1, registered by its daemon (a command it runs).
        two = of(c, 2)
        assert in_order(two, [call('standby_clone', '1'), call('repmgrd_starting'),
                              call('standby_register', '1'), call('repmgrd_standby', '1')]), two
        # node3: registered by hand; only its listed events.
        three = of(c, 3)
        assert in_order(three, [call('standby_clone', '1'), call('standby_register', '1')]), three
        assert {x['event'] for x in three} <= set(NODE3_EVENTS), three
        wait_until(lambda: ('repmgrd_standby', '1') in events_table(c.nodes[1], 3),
                   what="node3's state change recorded, though not notified")


def test_pause_and_unpause_are_notified():
    with cluster() as c:
        before = len(calls(c))
        pgrm('-f', c.confs[2], 'service', 'pause', check=0)
        pgrm('-f', c.confs[1], 'service', 'unpause', check=0)
        new = [(x['node'], x['event'], x['ok']) for x in calls(c)[before:] if x['event'].startswith('daemon_')]
        assert new == [(2, 'daemon_pause', '1'), (1, 'daemon_unpause', '1')], new
        assert last_pause_event(c.nodes[1], 2) == 'daemon_pause'
        assert last_pause_event(c.nodes[1], 1) == 'daemon_unpause'


def test_a_failing_notification_is_a_warning_and_nothing_else():
    with cluster() as c:
        n1 = c.nodes[1]
        for command, why in (('/nonexistent/notify %e', 'could not run "/nonexistent/notify": No such file'),
                             ('sh -c "exit 3" %e', 'exit status 3')):
            conf = harness.write_conf(c.sb, 2, c.nodes[2], name='repmgr2-failing',
                                      **harness.daemon_settings(2, c.sb, log_file=None,
                                                                event_notification_command=command))
            for verb, paused in (('pause', 't'), ('unpause', 'f')):
                r = pgrm('-f', conf, '--json', 'service', verb, check=0)
                doc = parse_json(r, f'service {verb} --json')
                assert doc['ok'] and doc['data']['changed'] is True, output(r)
                warning = f'event notification for "daemon_{verb}" failed: {why}'
                assert any(w.startswith(warning) for w in doc['warnings']), output(r)
                assert n1.psql('select paused from repmgr_test.failover_pause', db='pgbench') == paused
                assert last_pause_event(n1, 2) == f'daemon_{verb}'


def test_failover_goes_on_while_a_notification_hangs():
    with cluster() as c:
        n, d = c.nodes, c.daemons
        hang = c.sb.path('hang-repmgrd_primary_lost_confirming')
        hang.write_text('')
        before = len(calls(c))
        n[1].kill9()

        new_id = wait_until(lambda: one_promoted(c), timeout=60, what='node2 or node3 promoted')
        other = 5 - new_id
        harness.wait_streaming_from(n[other], n[new_id])
        # node2's first notification of the failover hangs, in a child too; both are killed
        # after the timeout. Its repmgrd went on meanwhile: it changed state (logged in its
        # loop) before the notification was given up.
        pids = wait_until(lambda: Path(f'{hang}.pids').read_text().split(), what='the hanging notification')
        wait_until(lambda: not pids_alive(pids), timeout=NOTIFICATION_TIMEOUT + 30,
                   what='the hanging notification and its child to be killed')
        gave_up = ('event notification for "repmgrd_primary_lost_confirming" failed: '
                   f'timed out after {NOTIFICATION_TIMEOUT} s and was stopped')
        d[2].wait_log(re.escape(gave_up), timeout=10)
        log = d[2].log_text()
        assert log.index('-> electing') < log.index(gave_up), d[2].tail()
        hang.unlink()

        # Then every notification, in order, each node's own.
        promote = [call('repmgrd_primary_lost_confirming', '1'), call('repmgrd_electing', '1'),
                   call('failover_decision', '1'), call('repmgrd_promoting', '1'),
                   call('standby_promote', '1'), call('repmgrd_primary', '1')]
        follow = [call('repmgrd_primary_lost_confirming', '1'), call('repmgrd_electing', '1'),
                  call('failover_decision', str(new_id)), call('repmgrd_following_new_primary', str(new_id)),
                  call('standby_follow', str(new_id)), call('repmgrd_standby', str(new_id))]
        for node, expected in ((new_id, promote), (other, follow)):
            if node == 3:
                expected = [x for x in expected if x['event'] in NODE3_EVENTS]
            wait_until(lambda node=node, expected=expected: in_order(of(c, node), expected),
                       timeout=30, what=f"node{node}'s notifications of the failover")
        decided = [x for x in calls(c)[before:] if x['event'] == 'failover_decision']
        won = [x for x in decided if x['node'] == new_id and x['ok'] == '1']
        lost = [x for x in decided if x['node'] == other and x['ok'] == '1']
        assert won and won[-1]['details'].startswith('promote: this node is the candidate'), decided
        assert lost and lost[-1]['details'].startswith(f'follow node {new_id}: '), decided
        # The other state changes of node3 were recorded, not notified.
        three = of(c, 3)
        assert {x['event'] for x in three} <= set(NODE3_EVENTS), three
        # What no primary could take while the failover ran is in the new primary's
        # metadata now, with its related node.
        new = n[new_id]
        wait_until(lambda: {('repmgrd_electing', '1'), ('failover_decision', '1'), ('standby_promote', '1'),
                            ('repmgrd_primary', '1')} <= set(events_table(new, new_id)),
                   what="the new primary's events recorded")
        wait_until(lambda: {('repmgrd_electing', '1'), ('failover_decision', str(new_id)),
                            ('standby_follow', str(new_id))} <= set(events_table(new, other)),
                   what="the follower's events recorded")
        for i in (1, 2, 3):
            assert d[i].running(), d[i].tail()


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
