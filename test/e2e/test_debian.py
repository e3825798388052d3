#!/usr/bin/env python3
"""End to end on clusters made as Debian makes them: pg_createcluster 15 pgrm_e2e_nN,
data in /var/lib/postgresql/15/pgrm_e2e_nN, configuration in /etc/postgresql/15/pgrm_e2e_nN
(none in the data directory), started and stopped with pg_ctlcluster only.

node1 and node2 name pg_ctlcluster in their service_*_command settings; node3 names
nothing, and pgrm finds its cluster by itself (node status and node check --server-control
say so). Standby clone --force into the clusters' data directories (its hint names
pg_ctlcluster); register; repmgrd fails over to node3 (the higher priority) when node1 is
killed -9, and node2 follows it, reloading through its service_reload_command; node1's
rejoin rewinds it with pg_rewind (whose crash recovery must read /etc's postgresql.conf),
never the rsync fallback, and starts it through pg_ctlcluster; a switchover back to node1
has the demoted primary's repmgrd stop and start it through pg_ctlcluster; with both
standbys stopped, node1's repmgrd fences it with fence = shutdown through its
service_stop_command; no file under /etc changed. The clusters are dropped with
pg_dropcluster --stop, whatever happens.
"""

import atexit
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (clone_args, output, parse_json, pgrm, wait_streaming_from,  # noqa: E402
                     wait_until, write_daemon_conf)

VERSION = '15'
NAMES = {i: f'pgrm_e2e_n{i}' for i in (1, 2, 3)}


def instance(node: int, port: int = 0) -> harness.DebianInstance:
    return harness.DebianInstance(NAMES[node], port, VERSION)


def drop_all():
    for node in NAMES:
        instance(node).drop()


def service_settings(node: int) -> dict:
    if node == 3:
        return {'priority': 200}  # found by itself; promoted first
    return {f'service_{a}_command': f'pg_ctlcluster {VERSION} {NAMES[node]} {a}'
            for a in ('start', 'stop', 'restart', 'reload')}


def test_debian_clusters():
    if not harness.DebianInstance.available():
        raise harness.SkipTest('needs root and postgresql-common (pg_createcluster)')
    atexit.register(drop_all)
    try:
        with harness.Sandbox() as sb:
            c = harness.DaemonCluster(sb)
            try:
                run(sb, c)
            except BaseException:
                c.dump()
                raise
            finally:
                c.close()
    finally:
        drop_all()
    left = [str(instance(i).etc) for i in NAMES if instance(i).etc.exists()]
    assert not left, f'the dropped clusters left {left} behind'


def run(sb: harness.Sandbox, c: harness.DaemonCluster):
    nodes = {i: instance(i, harness.free_port()) for i in (1, 2, 3)}
    for i, n in nodes.items():
        n.create()
        c.nodes[i] = n
        c.confs[i] = write_daemon_conf(sb, i, n, fence='shutdown', **service_settings(i))
    n1 = nodes[1]
    n1.start()
    n1.psql('create database pgbench')
    n1.psql('create table walk(i int primary key)', db='pgbench')
    pgrm('-f', c.confs[1], 'master', 'register', check=0)

    # Clone into the data directories pg_createcluster made (--force), start with pg_ctlcluster.
    for i in (2, 3):
        n = nodes[i]
        r = pgrm('-f', c.confs[i], *clone_args(n.datadir, n1, '--force'), check=0)
        hint = f'start the standby with: pg_ctlcluster {VERSION} {n.name} start'
        assert hint in output(r), output(r)
        assert not (n.datadir / 'postgresql.conf').exists(), 'clone wrote a postgresql.conf'
        n.start()
        wait_streaming_from(n, n1)
        pgrm('-f', c.confs[i], 'standby', 'register', check=0)
    etc_before = {i: n.etc_files() for i, n in nodes.items()}

    # How pgrm would start and stop each: node3's cluster found by its data directory.
    doc = parse_json(pgrm('-f', c.confs[3], '--json', 'node', 'status', check=0), 'node status --json')
    control = doc['data']['server_control']
    assert control['via'] == 'debian_cluster' and control['start'] == f'pg_ctlcluster {VERSION} {NAMES[3]} start', control
    assert control['config_file'] == f'/etc/postgresql/{VERSION}/{NAMES[3]}/postgresql.conf', control
    assert control['warning'] is None and control['reload'] == 'SELECT pg_reload_conf()', control
    r = pgrm('-f', c.confs[1], 'node', 'status', check=0)
    assert f'server control: pg_ctlcluster {VERSION} {NAMES[1]} start (service_start_command)' in output(r), output(r)
    for i in (1, 3):
        doc = parse_json(pgrm('-f', c.confs[i], '--json', 'node', 'check', '--server-control', check=0),
                         'node check --server-control --json')
        assert doc['data']['status'] == 'OK', doc

    for i in (1, 2, 3):
        c.start_daemon(i)
    c.daemons[1].wait_log('this node is the primary')
    n1.psql('insert into walk values (1)', db='pgbench')
    wait_until(lambda: all(nodes[i].psql('select count(*) from walk', db='pgbench') == '1' for i in (2, 3)),
               what='node2 and node3 to replay the first row')

    # Failover: node1 killed -9, one of node2 and node3 promoted by repmgrd.
    n1.kill9()
    new_id = wait_until(lambda: harness.one_promoted(c), timeout=90, interval=0.1,
                        what='node2 or node3 to accept writes')
    assert new_id == 3, f'node{new_id} promoted; node3 has the higher priority'
    new = nodes[new_id]
    new.psql('insert into walk values (2)', db='pgbench')
    # node2 follows node3; its primary_conninfo applied through its service_reload_command.
    wait_streaming_from(nodes[2], new)
    c.daemons[2].wait_log(f'running: pg_ctlcluster {VERSION} {NAMES[2]} reload', timeout=60)  # its follow's output

    # Rejoin after the crash: pg_rewind (its crash recovery reads /etc's postgresql.conf).
    c.daemons[1].stop()
    r = pgrm('-f', c.confs[1], '--verbose', '--json', 'node', 'rejoin', '-h', '127.0.0.1', '-p', new.port,
             check=0)
    doc = parse_json(r, 'node rejoin --json')
    assert doc['data']['method'] == 'pg_rewind' and 'rewind_error' not in doc['data'], doc
    assert f'--config-file=/etc/postgresql/{VERSION}/{n1.name}/postgresql.conf' in r.stderr, r.stderr
    assert f'running: pg_ctlcluster {VERSION} {n1.name} start' in r.stderr, r.stderr
    wait_streaming_from(n1, new)
    wait_until(lambda: n1.psql('select count(*) from walk', db='pgbench') == '2',
               what='node1 to replay the row written after the failover')

    # Switchover back to node1: the demoted primary's repmgrd stops and starts it with
    # pg_ctlcluster (its setting, or found by itself for node3).
    c.start_daemon(1)

    def switchover(*args):
        r = pgrm('-f', c.confs[1], '--json', 'standby', 'switchover', *args, check=None, timeout=300)
        return parse_json(r, 'standby switchover --json')
    wait_until(lambda: switchover('--dry-run')['exit_code'] == 0, timeout=90, interval=0.5,
               what="node1's switchover checks to hold")
    doc = switchover()
    assert doc['exit_code'] == 0, doc
    assert not n1.is_in_recovery()
    wait_streaming_from(new, n1)
    log = c.daemons[new_id].log_text()
    assert f'running: pg_ctlcluster {VERSION} {new.name} stop' in log, c.daemons[new_id].tail()
    assert f'running: pg_ctlcluster {VERSION} {new.name} start' in log, c.daemons[new_id].tail()
    n1.psql('insert into walk values (3)', db='pgbench')
    wait_until(lambda: all(nodes[i].psql('select count(*) from walk', db='pgbench') == '3' for i in (2, 3)),
               what='node2 and node3 to replay the row written after the switchover')

    # fence = shutdown: node1 cut off from both standbys (their servers stopped) is
    # stopped by its repmgrd through its service_stop_command.
    for i in (2, 3):
        nodes[i].stop()
    c.daemons[1].wait_log('fencing this primary', timeout=120)
    wait_until(lambda: not n1.is_running(), timeout=60, what="node1 to be stopped by its fence")
    assert f'running: pg_ctlcluster {VERSION} {NAMES[1]} stop' in c.daemons[1].log_text(), c.daemons[1].tail()

    for i, n in nodes.items():
        assert n.etc_files() == etc_before[i], f'{n.etc} changed'


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
