#!/usr/bin/env python3
"""End to end: daemon pause and daemon unpause with three nodes and their repmgrd.

  1. maintenance: failover paused from a standby (written on the primary, replayed by
     every standby); pausing again changes nothing and says so (--json); node status and
     node check --daemon show it; standby switchover is refused (only its "failover is
     not paused" check fails) and changes nothing; the primary stopped: the standbys'
     repmgrd go to state paused and nobody is promoted; daemon pause with the primary
     down is refused (ERR_DB_CON); the primary started again, the daemons are back to
     standby, daemon unpause (through the primary) resumes failover everywhere, and the
     switchover's checks hold again;
  2. the primary killed while paused: nobody is promoted; daemon unpause, with no
     primary to write to, asks each standby's repmgrd in turn (through its socket) to go
     on; a standby is promoted, the other follows it, and the new primary's repmgrd
     lifts the pause from the metadata.

The cluster is harness.setup_three's (failover = automatic, harness.DAEMON_FAST timings).
Negative tests wait for the daemons to reach state paused, then hold a bounded window
(harness.stays_false) in which nobody may be promoted.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (daemon_cluster, one_promoted, output, parse_json, pgrm, setup_three, stays_false,  # noqa: E402
                     wait_until, writable)


def status(conf: Path) -> dict:
    return parse_json(pgrm('-f', conf, '--json', 'node', 'status', check=0), 'node status --json')['data']


def daemon(conf: Path) -> dict:
    """The repmgrd's state as node status shows it ({} when none answers)."""
    return status(conf)['daemon']['state'] or {}


def paused_row(inst: harness.Instance) -> str:
    return inst.psql('select paused, node_id, changed_by from repmgr_test.failover_pause', db='pgbench')


def events(inst: harness.Instance, event: str) -> str:
    return inst.psql(f"select node_id from repmgr_test.events where event = '{event}' order by id", db='pgbench')


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

        # Paused from a standby: written on the primary, replayed by every standby.
        r = pgrm('-f', conf[2], 'daemon', 'pause', check=0)
        assert 'service pause: automatic failover paused in cluster "test"' in r.stdout, output(r)
        assert 'not yet' not in r.stdout and 'WARNING' not in r.stderr, output(r)
        for i in (1, 2, 3):
            assert paused_row(n[i]).startswith('t|2|'), (i, paused_row(n[i]))
        assert events(n[1], 'daemon_pause') == '2'
        # Again: not an error, nothing changed, and it says so.
        doc = parse_json(pgrm('-f', conf[3], '--json', 'daemon', 'pause', check=0), 'daemon pause --json')
        assert doc['ok'] and doc['data']['changed'] is False, doc
        assert doc['data']['pause']['paused'] is True and doc['data']['pause']['node_id'] == 2, doc
        assert '@' in doc['data']['pause']['changed_by'], doc
        assert [x['has_it'] for x in doc['data']['nodes']] == [True, True, True], doc
        assert 'failover was already paused since ' in doc['summary'], doc
        assert events(n[1], 'daemon_pause') == '2', 'a second pause recorded an event'

        # node status and node check --daemon say so.
        wait_until(lambda: daemon(conf[3]).get('paused') is True, what="node3's repmgrd to count failover as paused")
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

        # The primary stopped for maintenance: the standbys' repmgrd hold still.
        n[1].stop()
        for i in (2, 3):
            wait_until(lambda i=i: daemon(conf[i]).get('state') == 'paused', timeout=30,
                       what=f"node{i}'s repmgrd to reach state paused")
            assert 'failover is paused: not promoting, not following' in daemons[i].log_text()
        stays_false(lambda: [x.name for x in (n[2], n[3]) if writable(x)], 3, what='a standby promoted while paused')
        r = pgrm('-f', conf[2], 'daemon', 'pause', check=6)
        assert 'ERROR: failover not paused: primary node 1 ("node1") is not reachable' in r.stderr, output(r)

        # Back, the daemons follow it again; unpaused through it, everywhere.
        n[1].start()
        for i in (2, 3):
            wait_until(lambda i=i: daemon(conf[i]).get('state') == 'standby', timeout=30,
                       what=f"node{i}'s repmgrd back in state standby")
        doc = parse_json(pgrm('-f', conf[3], '--json', 'daemon', 'unpause', check=0), 'daemon unpause --json')
        assert doc['data']['changed'] is True and doc['data']['pause']['paused'] is False, doc
        assert [x['has_it'] for x in doc['data']['nodes']] == [True, True, True], doc
        assert events(n[1], 'daemon_unpause') == '3'
        r = pgrm('-f', conf[2], 'daemon', 'unpause', check=0)
        assert 'failover was already not paused' in r.stdout and 'nothing changed' in r.stdout, output(r)
        wait_until(lambda: daemon(conf[2]).get('paused') is False, what="node2's repmgrd to count failover as resumed")
        assert status(conf[2])['failover_pause']['paused'] is False
        wait_until(lambda: all(switchover_checks(conf[2], check=None).values()),
                   what="standby switchover's checks to hold again")


def test_unpause_with_the_primary_down_fails_over():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c)
        n, conf = c.nodes, c.confs
        pgrm('-f', conf[1], 'daemon', 'pause', check=0)
        n[1].kill9()
        for i in (2, 3):
            wait_until(lambda i=i: daemon(conf[i]).get('state') == 'paused', timeout=30,
                       what=f"node{i}'s repmgrd to reach state paused")
        stays_false(lambda: [x.name for x in (n[2], n[3]) if writable(x)], 3, what='a standby promoted while paused')
        r = pgrm('-f', conf[2], 'node', 'status', check=0)
        assert 'state paused since ' in r.stdout and 'automatic; paused since ' in r.stdout, output(r)

        # No primary to write to: each standby's repmgrd is asked in turn.
        r = pgrm('-f', conf[2], 'daemon', 'unpause', '--dry-run', check=0)
        assert "node 2's repmgrd would be asked to go on with failover despite the pause" in r.stdout, output(r)
        assert daemon(conf[2]).get('state') == 'paused'
        r = pgrm('-f', conf[2], 'daemon', 'unpause', check=0)
        assert ('service unpause: primary node 1 ("node1") is not reachable; '
                "node 2's repmgrd goes on with failover despite the pause") in r.stdout, output(r)
        assert 'run "repmgr service unpause" on the hosts of node 3 ("node3") too' in r.stdout, output(r)
        doc = parse_json(pgrm('-f', conf[3], '--json', 'daemon', 'unpause', check=0), 'daemon unpause --json')
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


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
