#!/usr/bin/env python3
"""End to end: the day-2 node commands on real servers on loopback (issue 10).

  1. standby unregister and master unregister: each refusal (a primary as a standby,
     the current primary, a standby as a primary, an unknown node, a former primary
     that still accepts writes) exits 1 and changes nothing; a running standby
     unregisters itself, a stopped one is unregistered from another node with
     --node-id, an inactive former primary after a promotion with master unregister;
     cluster show no longer lists them and the events are recorded;
  2. node status on the primary and on a standby (text and JSON), with and without a
     repmgrd for the node (asked through its socket);
  3. node check: each check, and --nagios's exit codes for each state: OK, WARNING
     (replication lag past --warning while replay is paused; .ready files past
     --warning), CRITICAL (--upstream on a standby whose upstream is down, an inactive
     slot, no repmgrd), UNKNOWN (the local server is down; a bad threshold).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import output, parse_json, pgrm, small_cluster, wait_until  # noqa: E402


# --------------------------------------------------------------------------------------
# Helpers


def shown(conf: Path) -> list:
    """The node ids cluster show lists, read with conf's node."""
    doc = parse_json(pgrm('-f', conf, '--json', 'cluster', 'show', check=0), 'cluster show --json')
    return [n['id'] for n in doc['data']['nodes']]


def metadata(inst: harness.Instance) -> str:
    """Every repl_nodes row and the number of events, as inst has them."""
    return (inst.psql('select * from repmgr_test.repl_nodes order by id', db='pgbench') + '\n' +
            inst.psql('select count(*) from repmgr_test.events', db='pgbench'))


def events(inst: harness.Instance, event: str) -> str:
    return inst.psql(f"select node_id, successful from repmgr_test.events where event = '{event}' "
                     'order by id', db='pgbench')


def start_repmgrd(sb: harness.Sandbox, conf: Path) -> subprocess.Popen:
    """repmgrd -f conf in the foreground, in its own session, ended at cleanup."""
    with open(sb.path(f'repmgrd-{conf.stem}.out'), 'ab') as out:
        proc = subprocess.Popen([str(harness.pgrm_path('repmgrd')), '-f', str(conf)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=harness.clean_env(), cwd=str(sb.root), start_new_session=True)
    sb.on_cleanup(lambda: harness.end_process_group(proc))
    return proc


def status(conf: Path) -> dict:
    return parse_json(pgrm('-f', conf, '--json', 'node', 'status', check=0), 'node status --json')['data']


def nagios(conf: Path, *args, check: int) -> str:
    """node check --nagios ARGS: asserts the exit code; returns stdout."""
    r = pgrm('-f', conf, 'node', 'check', '--nagios', *args, check=check)
    return r.stdout


def nagios_exit(conf: Path, *args) -> int:
    return pgrm('-f', conf, 'node', 'check', '--nagios', *args).returncode


# --------------------------------------------------------------------------------------
# standby unregister, master unregister


def test_unregister_then_cluster_show():
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=2)
        n, conf = c.nodes, c.confs
        assert shown(conf[1]) == [1, 2, 3]

        # Refusals, each exit 1 with its reason, and nothing changed.
        before = metadata(n[1])
        for c, group, extra, reason in [
                (conf[1], 'standby', [], 'node 1 ("node1") is a primary, not a standby'),
                (conf[2], 'standby', ['--node-id', '1'], 'node 1 ("node1") is a primary, not a standby'),
                (conf[1], 'master', [], 'node 1 ("node1") is the current primary'),
                (conf[2], 'primary', ['--node-id', '1'], 'node 1 ("node1") is the current primary'),
                (conf[2], 'master', ['--node-id', '3'], 'node 3 ("node3") is a standby, not a primary'),
                (conf[2], 'standby', ['--node-id', '9'], 'node 9 is not registered')]:
            r = pgrm('-f', c, group, 'unregister', *extra, check=1)
            assert f'ERROR: {reason}\n' in r.stderr, output(r)
        r = pgrm('-f', conf[2], '--json', 'standby', 'unregister', '--node-id', '9', check=1)
        doc = parse_json(r, 'refused standby unregister --json')
        assert doc['ok'] is False and doc['error']['code'] == 1, doc
        assert doc['error']['message'] == 'node 9 is not registered', doc
        pgrm('-f', conf[2], 'standby', 'unregister', '--node-id', '0', check=1)
        assert metadata(n[1]) == before, 'a refused unregister changed the metadata'

        # A running standby unregisters itself (the default node).
        r = pgrm('-f', conf[3], '--json', 'standby', 'unregister', check=0)
        doc = parse_json(r, 'standby unregister --json')
        assert doc['ok'] is True, doc
        assert doc['data']['node']['id'] == 3 and doc['data']['primary_node_id'] == 1, doc
        assert shown(conf[1]) == [1, 2]
        assert events(n[1], 'standby_unregister') == '3|t'
        # Unregistered, it is refused as any unknown node.
        pgrm('-f', conf[1], 'standby', 'unregister', '--node-id', '3', check=1)

        # node1 is lost; node2 is promoted and node1 is an inactive former primary.
        n[1].stop()
        wait_until(lambda: not harness.streaming(n[2]), what='node2 to stop streaming')
        pgrm('-f', conf[2], 'standby', 'promote', check=0)
        assert n[2].psql('select id, active from repmgr_test.repl_nodes order by id',
                         db='pgbench') == '1|f\n2|t'

        # Back up on its own, node1 accepts writes: it is not unregistered.
        n[1].start()
        before = metadata(n[2])
        r = pgrm('-f', conf[2], 'master', 'unregister', '--node-id', '1', check=1)
        assert 'ERROR: node 1 ("node1") is running and accepts writes\n' in r.stderr, output(r)
        r = pgrm('-f', conf[2], 'master', 'unregister', check=1)
        assert 'ERROR: node 2 ("node2") is the current primary\n' in r.stderr, output(r)
        assert metadata(n[2]) == before, 'a refused master unregister changed the metadata'

        # Stopped for good, it is.
        n[1].stop()
        r = pgrm('-f', conf[2], 'master', 'unregister', '--node-id', '1', check=0)
        assert 'former primary node 1 ("node1") removed' in r.stdout, output(r)
        assert shown(conf[2]) == [2]
        assert events(n[2], 'primary_unregister') == '1|t'
        r = pgrm('-f', conf[2], '--json', 'cluster', 'event', '--event', 'primary_unregister', check=0)
        assert parse_json(r, 'cluster event --json')['data']['events'][0]['node_id'] == 1


# --------------------------------------------------------------------------------------
# node status, node check


def test_node_status_primary_and_standby():
    with harness.Sandbox() as sb:
        c = small_cluster(sb)
        n, conf = c.nodes, c.confs
        p = status(conf[1])
        assert p['role'] == 'primary' and p['read_only'] is False, p
        assert p['registered']['type'] == 'primary' and p['registered']['active'] is True, p
        assert p['timeline'] == 1 and p['current_lsn'] and p['replay_lsn'] is None, p
        assert p['upstream_node_id'] is None and p['lag_bytes'] is None, p
        assert p['daemon']['running'] is False and p['daemon']['state'] is None, p
        assert p['server_version_num'] >= 120000, p

        c.write(1)
        lsn = n[1].psql('select pg_current_wal_lsn()')
        wait_until(lambda: n[2].psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == 't',
                   what='node2 to replay the insert')
        s = status(conf[2])
        assert s['role'] == 'standby' and s['registered']['type'] == 'standby', s
        assert s['timeline'] == 1, s
        assert s['current_lsn'] is None and s['receive_lsn'] and s['replay_lsn'], s
        assert s['upstream_node_id'] == 1 and s['streaming_from_node_id'] == 1, s
        assert s['receiver_status'] == 'streaming' and s['sender'] == f'127.0.0.1:{n[1].port}', s
        assert isinstance(s['lag_bytes'], int) and s['lag_bytes'] >= 0, s
        assert isinstance(s['lag_seconds'], (int, float)), s

        # Text, for people.
        r = pgrm('-f', conf[2], 'node', 'status', check=0)
        for want in ('Node 2 ("node2") of cluster "test":', 'role:', 'standby (registered: standby)',
                     'upstream:', 'node 1 ("node1"); streaming from node 1 ("node1")',
                     'repmgrd:', 'not running'):
            assert want in r.stdout, output(r)

        # With its repmgrd: running, with its pid, as its socket says.
        d = start_repmgrd(sb, conf[1])
        wait_until(lambda: status(conf[1])['daemon']['running'], what="node1's repmgrd to answer")
        wait_until(lambda: status(conf[1])['daemon']['state']['state'] == 'primary',
                   what="node1's repmgrd to reach state primary")
        p = status(conf[1])
        assert p['daemon']['state']['pid'] == d.pid and p['daemon']['state']['node_id'] == 1, p
        assert p['daemon']['state']['last_pass'] and p['daemon']['state']['reason'], p
        assert status(conf[2])['daemon']['running'] is False, 'node2 has no repmgrd'
        r = pgrm('-f', conf[1], 'node', 'status', check=0)
        assert f'running, pid {d.pid}, state primary since ' in r.stdout, output(r)

        # The local server down: the seed's ERR_DB_CON.
        n[2].stop()
        r = pgrm('-f', conf[2], 'node', 'status', check=6)
        assert 'could not connect' in r.stderr, output(r)


def test_node_check_nagios_states():
    with harness.Sandbox() as sb:
        # archive_command fails, so WAL files wait with .ready files.
        c = small_cluster(sb, extra_conf={'archive_mode': 'on', 'archive_command': '/bin/false'})
        n, conf = c.nodes, c.confs

        # All checks on the primary: the one problem is the missing repmgrd.
        out = nagios(conf[1], check=2)
        first = out.splitlines()[0]
        assert first.startswith('PGRM_NODE CRITICAL: daemon CRITICAL | '), out
        for line in ('role OK: node 1 ("node1") is the primary, as registered',
                     'replication_lag OK: this node is the primary: no replication lag',
                     'downstream OK: 1 of 1 standbys attached: node 2 ("node2")',
                     'upstream OK: this node is the primary: no upstream',
                     'slots OK: 0 replication slots, none inactive',
                     'daemon CRITICAL: repmgrd is not running for node 1'):
            assert line in out.splitlines(), out
        start_repmgrd(sb, conf[1])
        wait_until(lambda: nagios_exit(conf[1], '--daemon') == 0, what="node1's repmgrd to answer")
        wait_until(lambda: 'state primary' in nagios(conf[1], '--daemon', check=0),
                   what="node1's repmgrd to reach state primary")
        assert nagios(conf[1], '--daemon', check=0).startswith('PGRM_DAEMON OK: repmgrd is running (pid ')
        assert nagios(conf[2], '--daemon', check=2) == 'PGRM_DAEMON CRITICAL: repmgrd is not running for node 2\n'

        # JSON and text: every check, exit 0 whatever they found.
        r = pgrm('-f', conf[2], '--json', 'node', 'check', check=0)
        doc = parse_json(r, 'node check --json')
        checks = {c['check']: c for c in doc['data']['checks']}
        assert list(checks) == ['role', 'replication_lag', 'downstream', 'upstream', 'archive_ready',
                                'slots', 'daemon', 'server_control'], doc
        assert doc['data']['status'] == 'CRITICAL', doc
        assert checks['server_control']['status'] == 'OK', doc   # initdb: configuration in the data directory
        assert checks['role']['status'] == 'OK' and checks['upstream']['status'] == 'OK', doc
        assert checks['replication_lag']['perfdata']['lag']['uom'] == 's', doc
        r = pgrm('-f', conf[2], 'node', 'check', '--upstream', check=0)
        assert 'upstream | OK     | streaming from node 1 ("node1")' in r.stdout, output(r)
        assert 'node check: OK' in r.stdout, output(r)

        # OK, then WARNING and CRITICAL by the lag thresholds: replay paused after a
        # replayed commit, and a new one received but not replayed.
        assert nagios(conf[2], '--role', check=0) == 'PGRM_ROLE OK: node 2 ("node2") is a standby, as registered\n'
        assert nagios(conf[2], '--upstream', check=0) == 'PGRM_UPSTREAM OK: streaming from node 1 ("node1")\n'
        assert nagios(conf[1], '--downstream', check=0).startswith('PGRM_DOWNSTREAM OK: 1 of 1 standbys attached')
        c.write(1)
        lsn = n[1].psql('select pg_current_wal_lsn()')
        wait_until(lambda: n[2].psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == 't',
                   what='node2 to replay the insert')
        out = nagios(conf[2], '--replication-lag', '--warning', '30', '--critical', '60', check=0)
        assert out.startswith('PGRM_REPLICATION_LAG OK: 0 s behind the primary, 0 bytes | lag=0s;30;60 lag_bytes=0B'), out
        n[2].psql('select pg_wal_replay_pause()')
        c.write(1)
        lsn = n[1].psql('select pg_current_wal_lsn()')
        wait_until(lambda: n[2].psql(f"select pg_last_wal_receive_lsn() >= '{lsn}'") == 't',
                   what='node2 to receive the second insert')
        wait_until(lambda: nagios_exit(conf[2], '--replication-lag', '--warning', '1', '--critical', '3600') == 1,
                   what='the lag to pass 1 s')
        out = nagios(conf[2], '--replication-lag', '--warning', '1', '--critical', '3600', check=1)
        assert out.startswith('PGRM_REPLICATION_LAG WARNING: '), out
        assert '(replay is paused) | lag=' in out and ';1;3600 lag_bytes=' in out, out
        out = nagios(conf[2], '--replication-lag', '--warning', '0.5', '--critical', '1', check=2)
        assert out.startswith('PGRM_REPLICATION_LAG CRITICAL: '), out
        n[2].psql('select pg_wal_replay_resume()')
        wait_until(lambda: nagios_exit(conf[2], '--replication-lag', '--warning', '1') == 0,
                   what='the lag to be gone once replay resumes')

        # .ready files past the thresholds.
        for i in range(3):
            c.write(1)
            n[1].psql('select pg_switch_wal()')
        wait_until(lambda: nagios_exit(conf[1], '--archive-ready', '--warning', '2', '--critical', '100') == 1,
                   what='two .ready files')
        out = nagios(conf[1], '--archive-ready', '--warning', '2', '--critical', '100', check=1)
        assert out.startswith('PGRM_ARCHIVE_READY WARNING: ') and ';2;100' in out, out
        nagios(conf[1], '--archive-ready', '--warning', '1', '--critical', '2', check=2)
        assert 'ready_files=' in nagios(conf[1], '--archive-ready', check=0), 'fewer than 16 is OK'

        # An inactive slot.
        n[1].psql("select pg_create_physical_replication_slot('gone')")
        assert nagios(conf[1], '--slots', check=2) == \
            'PGRM_SLOTS CRITICAL: 1 inactive replication slot: "gone" | inactive_slots=1\n'
        n[1].psql("select pg_drop_replication_slot('gone')")
        nagios(conf[1], '--slots', check=0)

        # Bad thresholds: UNKNOWN for Nagios, the seed's usage error otherwise.
        out = nagios(conf[1], '--role', '--warning', '5', check=3)
        assert out.startswith('PGRM_ROLE UNKNOWN: --warning and --critical go with one check'), out
        nagios(conf[2], '--replication-lag', '--warning', 'soon', check=3)
        nagios(conf[2], '--replication-lag', '--warning', '10', '--critical', '5', check=3)
        r = pgrm('-f', conf[2], 'node', 'check', '--replication-lag', '--warning', 'soon', check=1)
        assert 'ERROR: invalid value "soon" for --warning: must be a number >= 0' in r.stderr, output(r)
        pgrm('-f', conf[2], '--json', 'node', 'check', '--nagios', check=1)

        # CRITICAL: the standby's upstream is down, so it does not stream.
        n[1].stop()
        wait_until(lambda: not harness.streaming(n[2]), what='node2 to stop streaming')
        out = nagios(conf[2], '--upstream', check=2)
        assert out.startswith('PGRM_UPSTREAM CRITICAL: not streaming (WAL receiver: '), out
        assert out.rstrip().endswith('; the metadata names node 1 ("node1")'), out

        # UNKNOWN: the local server is down (the daemon check needs no server).
        n[2].stop()
        out = nagios(conf[2], '--role', check=3)
        assert out.startswith('PGRM_ROLE UNKNOWN: could not connect to '), out
        out = nagios(conf[2], check=3)
        assert out.startswith('PGRM_NODE UNKNOWN: could not connect to '), out
        nagios(conf[2], '--daemon', check=2)
        pgrm('-f', conf[2], 'node', 'check', '--role', check=6)


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
