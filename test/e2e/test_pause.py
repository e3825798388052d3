#!/usr/bin/env python3
"""End to end: service pause, service unpause and service status with three nodes and
their repmgrd (repmgr 4's "daemon pause" spelling too).

  1. maintenance: failover paused from a standby (written on the primary, replayed by
     every standby); pausing again changes nothing and says so (--json); cluster show,
     service status and node status say paused (text and --json), node check --daemon
     warns; standby switchover is refused (only its "failover is not paused" check fails)
     and changes nothing; the primary stopped: the standbys' repmgrd go to state paused
     and nobody is promoted; service pause with the primary down is refused (ERR_DB_CON);
     the primary started again, the daemons are back to standby, service unpause (through
     the primary) resumes failover everywhere, and the switchover's checks hold again; the
     primary's repmgrd, held from the stop until after the unpause, reads it with no probe
     round since the stop (more than fence_after ago) and is not fenced: its round reaches
     both standbys;
  2. the primary killed while paused: nobody is promoted, and service status shows it;
     service unpause, with no primary to write to, asks each standby's repmgrd in turn
     (through its socket) to go on; a standby is promoted, the other follows it, and the
     new primary's repmgrd lifts the pause from the metadata;
  3. a paused primary on another host (harness.setup_partitioned) cut off from both
     standbys is not fenced: it stays writable, its repmgrd warns each pass, and the
     standbys do not fail over; service unpause on its host, the cut still on, fences it.
     Its repmgrd is held from before the pause until the cut and a lock on repl_nodes
     that its next pass waits on past its query timeout: the pause, read at that pass,
     holds the lease renewed before it. A pass that fails to read the pause (lock_timeout)
     goes by the last one that read it.

Clusters 1 and 2 are harness.setup_three's (failover = automatic, harness.DAEMON_FAST
timings). Negative tests wait for the daemons to decide (state paused, or the warning
that a fence is held back), then hold a bounded window (harness.stays_false) in which
nothing may happen.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (daemon_cluster, one_promoted, output, parse_json, pgrm, setup_three, stays_false,  # noqa: E402
                     wait_until, writable)


def fence_after(d: harness.Daemon) -> float:
    """fence_after in seconds, as the daemon logs it at start."""
    m = re.search(r'fences itself (\d+) (s|ms) after', d.log_text())
    assert m, d.tail()
    return int(m[1]) / (1000 if m[2] == 'ms' else 1)


def status(conf: Path, netns=None) -> dict:
    return parse_json(pgrm('-f', conf, '--json', 'node', 'status', check=0, netns=netns), 'node status --json')['data']


def daemon(conf: Path, netns=None) -> dict:
    """The repmgrd's state as node status shows it ({} when none answers)."""
    return status(conf, netns)['daemon']['state'] or {}


def paused_row(inst: harness.Instance) -> str:
    return inst.psql('select paused, node_id, changed_by from repmgr_test.failover_pause', db='pgbench')


def events(inst: harness.Instance, event: str) -> str:
    return inst.psql(f"select node_id from repmgr_test.events where event = '{event}' order by id", db='pgbench')


def service_status(conf: Path, netns=None) -> dict:
    """service status --json: node id -> that node's entry."""
    doc = parse_json(pgrm('-f', conf, '--json', 'service', 'status', check=0, netns=netns), 'service status --json')
    return {n['id']: n for n in doc['data']['nodes']}


def status_rows(text: str) -> dict:
    """service status's table: node id -> its cells, by column name."""
    lines = text.splitlines()
    head = [c.strip() for c in lines[0].split('|')]
    assert head == ['ID', 'Name', 'Role', 'Status', 'Upstream', 'repmgrd', 'PID', 'Paused?', 'Upstream last seen'], text
    rows = {}
    for line in lines[2:]:
        if '|' not in line:
            break
        cells = [c.strip() for c in line.split('|')]
        rows[int(cells[0])] = dict(zip(head, cells))
    return rows


def switchover_checks(conf: Path, check: int) -> dict:
    """standby switchover --dry-run --json: check name -> ok."""
    doc = parse_json(pgrm('-f', conf, '--json', 'standby', 'switchover', '--dry-run', check=check),
                     'standby switchover --dry-run --json')
    return {c['check']: c['ok'] for c in doc['data']['checks']}


def test_pause_holds_failover_through_a_primary_restart():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c)
        n, conf, daemons = c.nodes, c.confs, c.daemons
        checks = switchover_checks(conf[2], check=0)
        assert checks['failover is not paused'] and all(checks.values()), checks

        # Paused from a standby, as repmgr 4 spells it: written on the primary, replayed by
        # every standby.
        r = pgrm('-f', conf[2], 'daemon', 'pause', check=0)
        assert 'service pause: automatic failover paused in cluster "test"' in r.stdout, output(r)
        assert 'not yet' not in r.stdout and 'WARNING' not in r.stderr, output(r)
        for i in (1, 2, 3):
            assert paused_row(n[i]).startswith('t|2|'), (i, paused_row(n[i]))
        assert events(n[1], 'daemon_pause') == '2'
        # Again: not an error, nothing changed, and it says so.
        doc = parse_json(pgrm('-f', conf[3], '--json', 'service', 'pause', check=0), 'service pause --json')
        assert doc['ok'] and doc['data']['changed'] is False, doc
        assert doc['data']['pause']['paused'] is True and doc['data']['pause']['node_id'] == 2, doc
        assert '@' in doc['data']['pause']['changed_by'], doc
        assert [x['has_it'] for x in doc['data']['nodes']] == [True, True, True], doc
        assert 'failover was already paused since ' in doc['summary'], doc
        assert events(n[1], 'daemon_pause') == '2', 'a second pause recorded an event'

        # cluster show, service status, node status and node check --daemon say so.
        wait_until(lambda: daemon(conf[3]).get('paused') is True, what="node3's repmgrd to count failover as paused")
        r = pgrm('-f', conf[1], 'cluster', 'show', check=0)
        assert 'failover is paused since ' in r.stdout and 'by ' in r.stdout and ' on node 2: repmgrd neither ' \
            'fails over nor fences ("repmgr service unpause" resumes it)' in r.stdout, output(r)
        doc = parse_json(pgrm('-f', conf[1], '--json', 'cluster', 'show', check=0), 'cluster show --json')
        assert doc['data']['failover_pause']['paused'] is True and doc['data']['failover_pause']['node_id'] == 2, doc
        # The other nodes' repmgrd run as their records say: fresh ones, under load too.
        def all_running():
            r = pgrm('-f', conf[3], 'service', 'status', check=0)
            return [status_rows(r.stdout)[i]['repmgrd'] for i in (1, 2, 3)] == ['running'] * 3 and r
        r = wait_until(all_running, what='service status to show every repmgrd running')
        rows = status_rows(r.stdout)
        assert [rows[i]['Paused?'] for i in (1, 2, 3)] == ['yes', 'yes', 'yes'], r.stdout
        assert rows[3]['PID'] == str(c.daemons[3].pid) and rows[1]['PID'] == 'n/a', r.stdout
        assert rows[1]['Status'] == '* running' and rows[1]['Upstream last seen'] == 'n/a', r.stdout
        assert rows[2]['Upstream'] == 'node1' and rows[2]['Upstream last seen'].endswith(' second(s) ago'), r.stdout
        assert r.stdout.rstrip().splitlines()[-1].startswith('failover paused since '), output(r)
        assert r.stdout.rstrip().endswith(' on node 2 in cluster "test"'), output(r)
        # The same as JSON (fresh records again: a loaded machine can make one stale).
        nodes = wait_until(lambda: (lambda d: d[1]['repmgrd']['running'] and d)(service_status(conf[3])),
                           what='service status --json to show node1\'s repmgrd running')
        assert all(nodes[i]['paused'] is True for i in (1, 2, 3)), nodes
        assert nodes[3]['repmgrd'] == {**nodes[3]['repmgrd'], 'running': True, 'source': 'socket',
                                       'pid': c.daemons[3].pid}, nodes[3]
        assert isinstance(nodes[3]['repmgrd']['state'], str), nodes[3]  # standby, unless a check ran late
        assert nodes[1]['repmgrd']['running'] is True and nodes[1]['repmgrd']['source'] == 'metadata', nodes[1]
        s = status(conf[3])
        assert s['failover_pause']['paused'] is True and s['failover_pause']['node_id'] == 2, s
        r = pgrm('-f', conf[3], 'node', 'status', check=0)
        assert 'failover:     automatic; paused since ' in r.stdout and 'state standby' in r.stdout, output(r)
        assert '; failover paused' in r.stdout, output(r)
        r = pgrm('-f', conf[3], 'node', 'check', '--daemon', '--nagios', check=1)
        assert r.stdout.startswith('PGRM_DAEMON WARNING: repmgrd is running (pid ') and 'failover is paused' in r.stdout, \
            output(r)

        # standby switchover is refused, for that reason alone, and changes nothing.
        checks = switchover_checks(conf[2], check=1)
        assert [k for k, ok in checks.items() if not ok] == ['failover is not paused'], checks
        before = n[1].psql('select * from repmgr_test.repl_nodes order by id; '
                           'select count(*) from repmgr_test.switchover', db='pgbench')
        r = pgrm('-f', conf[2], 'standby', 'switchover', check=1)
        assert 'standby switchover refused: failover is not paused: paused since ' in r.stdout, output(r)
        assert n[1].psql('select * from repmgr_test.repl_nodes order by id; '
                         'select count(*) from repmgr_test.switchover', db='pgbench') == before
        assert writable(n[1]) and not writable(n[2])

        # The primary stopped for maintenance, once its own repmgrd counts the pause (a lease
        # renewed before it would run out while the server is down, and fence the server as
        # it comes back, as service pause says): the standbys' repmgrd hold still. Its own is
        # held (SIGSTOP) from its first pass without its server until after the unpause
        # below, as a loaded machine may order them: its first pass back then reads the
        # unpause with no probe round since the stop, more than fence_after ago.
        wait_until(lambda: daemon(conf[1]).get('paused') is True, what="node1's repmgrd to count failover as paused")
        stopped = time.monotonic()  # after its last probe round's start
        n[1].stop()
        daemons[1].wait_log('state primary -> local_server_down')
        held = harness.freeze(daemons[1].pid)
        try:
            for i in (2, 3):
                wait_until(lambda i=i: daemon(conf[i]).get('state') == 'paused', timeout=30,
                           what=f"node{i}'s repmgrd to reach state paused")
                assert 'failover is paused: not promoting, not following' in daemons[i].log_text()
            stays_false(lambda: [x.name for x in (n[2], n[3]) if writable(x)], 3,
                        what='a standby promoted while paused')
            r = pgrm('-f', conf[2], 'service', 'pause', check=6)
            assert 'ERROR: failover not paused: primary node 1 ("node1") is not reachable' in r.stderr, output(r)

            # Back, the daemons follow it again; unpaused through it, everywhere.
            n[1].start()
            for i in (2, 3):
                wait_until(lambda i=i: daemon(conf[i]).get('state') == 'standby', timeout=30,
                           what=f"node{i}'s repmgrd back in state standby")
            doc = parse_json(pgrm('-f', conf[3], '--json', 'service', 'unpause', check=0), 'service unpause --json')
            assert doc['data']['changed'] is True and doc['data']['pause']['paused'] is False, doc
            assert [x['has_it'] for x in doc['data']['nodes']] == [True, True, True], doc
            assert events(n[1], 'daemon_unpause') == '3'
            wait_until(lambda: time.monotonic() - stopped > fence_after(daemons[1]),
                       what="node1's repmgrd to be without a probe round for more than fence_after")
        finally:
            harness.thaw(held)
        # Unpaused, node1's repmgrd fences only if its probe round finds the cut still on:
        # it reaches both standbys (before, it fenced as it read the unpause).
        wait_until(lambda: (lambda d: d.get('paused') is False and d.get('state') == 'primary')(daemon(conf[1])),
                   what="node1's repmgrd back in state primary, counting failover as resumed")
        stays_false(lambda: not writable(n[1]) or daemon(conf[1]).get('state') != 'primary', 3,
                    what='node1 fenced, reaching both standbys, once unpaused')
        assert 'fencing this primary' not in daemons[1].log_text(), daemons[1].tail()
        r = pgrm('-f', conf[2], 'service', 'unpause', check=0)
        assert 'failover was already not paused' in r.stdout and 'nothing changed' in r.stdout, output(r)
        wait_until(lambda: daemon(conf[2]).get('paused') is False, what="node2's repmgrd to count failover as resumed")
        assert status(conf[2])['failover_pause']['paused'] is False
        wait_until(lambda: all(switchover_checks(conf[2], check=None).values()),
                   what="standby switchover's checks to hold again")
        r = pgrm('-f', conf[1], 'cluster', 'show', check=0)
        assert 'failover is' not in r.stdout, output(r)
        wait_until(lambda: all(x['paused'] is False for x in service_status(conf[2]).values()),
                   what='service status to show failover resumed on every node')


def test_unpause_with_the_primary_down_fails_over():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c)
        n, conf = c.nodes, c.confs
        pgrm('-f', conf[1], 'service', 'pause', check=0)
        n[1].kill9()
        for i in (2, 3):
            wait_until(lambda i=i: daemon(conf[i]).get('state') == 'paused', timeout=30,
                       what=f"node{i}'s repmgrd to reach state paused")
        stays_false(lambda: [x.name for x in (n[2], n[3]) if writable(x)], 3, what='a standby promoted while paused')
        r = pgrm('-f', conf[2], 'node', 'status', check=0)
        assert 'state paused since ' in r.stdout and 'automatic; paused since ' in r.stdout, output(r)
        r = pgrm('-f', conf[2], 'service', 'status', check=0)
        rows = status_rows(r.stdout)
        assert rows[1]['Status'] == '? unreachable' and rows[1]['Paused?'] == 'n/a', r.stdout
        assert rows[2]['repmgrd'] == 'running' and rows[2]['Paused?'] == 'yes', r.stdout
        assert 'node 1 ("node1") is unreachable: ' in r.stdout, output(r)
        nodes = service_status(conf[2])
        assert nodes[2]['repmgrd']['state'] == 'paused' and nodes[1]['error'], nodes

        # No primary to write to: each standby's repmgrd is asked in turn.
        r = pgrm('-f', conf[2], 'service', 'unpause', '--dry-run', check=0)
        assert "node 2's repmgrd would be asked to go on with failover despite the pause" in r.stdout, output(r)
        assert daemon(conf[2]).get('state') == 'paused'
        r = pgrm('-f', conf[2], 'service', 'unpause', check=0)
        assert ('service unpause: primary node 1 ("node1") is not reachable; '
                "node 2's repmgrd goes on with failover despite the pause") in r.stdout, output(r)
        assert 'run "repmgr service unpause" on the hosts of node 3 ("node3") too' in r.stdout, output(r)
        assert 'make sure it is down; a paused primary does not fence itself' in r.stderr, output(r)
        # Told to go on (or, once promoted, having lifted the pause): not paused.
        assert status_rows(pgrm('-f', conf[2], 'service', 'status', check=0).stdout)[2]['Paused?'] in \
            ('no (overridden)', 'no')
        doc = parse_json(pgrm('-f', conf[3], '--json', 'service', 'unpause', check=0), 'service unpause --json')
        assert doc['data']['resumed_node_id'] == 3 and doc['data']['primary_reachable'] is False, doc
        new_id = wait_until(lambda: one_promoted(c), timeout=60, what='one of node2/node3 to be promoted')
        other = 5 - new_id
        harness.wait_streaming_from(n[other], n[new_id])
        assert not writable(n[other])

        # The new primary's repmgrd lifted the pause; the follower replayed that.
        wait_until(lambda: paused_row(n[new_id]) == f'f|{new_id}|repmgrd of node {new_id}',
                   what='the new primary to lift the pause')
        assert events(n[new_id], 'daemon_unpause') == str(new_id)
        wait_until(lambda: status(conf[other])['failover_pause']['paused'] is False,
                   what=f'node{other} to replay the lifted pause')
        wait_until(lambda: daemon(conf[other]).get('state') == 'standby' and daemon(conf[other]).get('paused') is False,
                   what=f"node{other}'s repmgrd to follow, unpaused")
        assert 'repmgrd_paused' in n[new_id].psql("select string_agg(event, ' ') from repmgr_test.events "
                                                  f"where node_id = {new_id}", db='pgbench')


def test_paused_primary_cut_off_is_not_fenced_until_unpaused():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        # node1's fence_after 11 s (reconnect_attempts 8): room for the steps below while
        # its repmgrd is held.
        host = harness.setup_partitioned(c, node_settings={1: {'reconnect_attempts': 8}})
        n, conf, daemons = c.nodes, c.confs, c.daemons
        lease = fence_after(daemons[1])

        # The pause reaches node1's repmgrd at a pass that ends before its probe round, while
        # the lease it renewed before runs: held (SIGSTOP) from before the pause until the cut
        # and a lock on repl_nodes that its round waits on past its query timeout. Before,
        # that lease ran out meanwhile and fenced it, paused.
        frozen = harness.freeze(daemons[1].pid)
        try:
            frozen_at = time.monotonic()  # after its last round's start: its lease ends before frozen_at + lease
            pgrm('-f', conf[2], 'service', 'pause', check=0)
            host.link(False)
            hold = lease + 2  # past that lease's end, from after frozen_at
            locker = threading.Thread(target=n[1].psql, kwargs={'db': 'pgbench', 'sql': (
                f'begin; lock table repmgr_test.repl_nodes in access exclusive mode; select pg_sleep({hold}); commit')})
            locker.start()
            wait_until(lambda: n[1].psql("select count(*) from pg_locks where granted and mode = 'AccessExclusiveLock' "
                                         "and relation = 'repmgr_test.repl_nodes'::regclass", db='pgbench') == '1',
                       what='the lock on repl_nodes')
            # Its first pass once thawed reads the pause before that lease ends (at worst a
            # pass and its round after frozen_at, less what it waited already).
            assert time.monotonic() - frozen_at < lease - 3, 'held too long for the lease to outlast its next pass'
        finally:
            harness.thaw(frozen)
        daemons[1].wait_log('state primary -> local_server_down')
        locker.join()
        assert writable(n[1]) and 'fencing this primary' not in daemons[1].log_text(), daemons[1].tail()
        wait_until(lambda: daemon(conf[1], netns=host).get('paused') is True,
                   what="node1's repmgrd to count failover as paused")

        # Cut off: held back, it says so each pass, and stays writable; nobody promotes.
        daemons[1].wait_log('failover is paused: not fencing this primary, cut off from a majority')
        for i in (2, 3):
            wait_until(lambda i=i: daemon(conf[i]).get('state') == 'paused', timeout=30,
                       what=f"node{i}'s repmgrd to reach state paused")
        stays_false(lambda: not writable(n[1]) or [x.name for x in (n[2], n[3]) if writable(x)], 3,
                    what='node1 fenced, or a standby promoted, while paused')
        held = daemons[1].log_text().count('failover is paused: not fencing this primary')
        assert held >= 2, f'the held fence was logged {held} time(s), not each pass{daemons[1].tail()}'
        s = status(conf[1], netns=host)
        assert s['daemon']['state']['state'] == 'primary' and s['daemon']['state']['paused'] is True, s
        n[1].psql('insert into t values (1)', db='pgbench')

        # A pause its repmgrd fails to read (lock_timeout, behind a lock) holds as the last
        # pass read it. Before, that pass counted failover as resumed, and fenced node1.
        n[1].psql("alter system set lock_timeout = '100ms'")
        n[1].psql('select pg_reload_conf()')
        locker = threading.Thread(target=n[1].psql, kwargs={'db': 'pgbench', 'sql': (
            'begin; set local lock_timeout = 0; '
            'lock table repmgr_test.failover_pause in access exclusive mode; select pg_sleep(8); commit')})
        locker.start()
        wait_until(lambda: 'failover pause not read' in daemons[1].log_text() or not writable(n[1]),
                   what="node1's repmgrd to fail reading the pause")
        assert writable(n[1]), f'node1 fenced, its pause unread{daemons[1].tail()}'
        stays_false(lambda: not writable(n[1]), 2, what='node1 fenced while paused, its pause unread')
        locker.join()
        n[1].psql('alter system reset lock_timeout')
        n[1].psql('select pg_reload_conf()')

        # Unpaused on its host, the cut still on: written there alone, then fenced.
        r = pgrm('-f', conf[1], 'service', 'unpause', check=0, netns=host)
        assert 'automatic failover resumed' in r.stdout and 'not yet on node 2 ("node2"), node 3 ("node3")' \
            in r.stdout, output(r)
        wait_until(lambda: not writable(n[1]), timeout=30, what='node1 to fence itself once unpaused')
        daemons[1].wait_log('cut off from a majority', timeout=5)
        assert n[1].psql('show default_transaction_read_only') == 'on'


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
