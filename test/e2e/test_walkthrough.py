#!/usr/bin/env python3
"""End to end: the seed's whole walkthrough ("Usage walkthrough" and "Alternate setup:
both servers on one host" of repmgr 1.0's README) on real servers on loopback: clone and
register, lose the primary, promote a standby, make the other standby follow it, add a
node cloned from the new primary, bring the old primary back with a forced clone
(pg_rewind), and restore the original roles. After every step check() proves that exactly
one node accepts writes, that every committed row is on every node, and that the metadata
agrees with what the servers really do.

Then the rejoin of a diverged old primary (it took writes on the dead timeline), the
rejoin right after a promotion (the PEERS lesson), a follow past the start of a record the
old primary never finished sending, and the refusals of promote, follow and a forced
clone, each asserting that nothing changed.

pgrm runs as root (harness.pgrm's default), through the `repmgr` persona symlink.
"""

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (WALK_TABLE, Cluster, assert_read_only, clone_args, make_primary,  # noqa: E402
                     output, parse_json, pgrm, primary_conninfo, receiver, small_cluster,
                     wait_streaming_from, wait_until, write_conf)


# --------------------------------------------------------------------------------------
# Helpers

TIMINGS: list = []


def timed(what: str, fn):
    t0 = time.monotonic()
    result = fn()
    dt = time.monotonic() - t0
    TIMINGS.append((what, dt))
    print(f'# timing: {what}: {dt:.2f} s', flush=True)
    return result


# --------------------------------------------------------------------------------------
# The walkthrough


def test_walkthrough():
    with harness.Sandbox() as sb:
        c = Cluster(sb)

        # ---- 1. node1 primary with pgbench data; node2, node3 cloned; all registered.
        n1 = make_primary(sb)
        n1.psql(WALK_TABLE, db='pgbench')
        conf1 = c.add(1, n1)
        pgrm('-f', conf1, '--verbose', 'master', 'register', check=0)
        n2 = sb.new_instance('node2')
        n3 = sb.new_instance('node3')
        for n in (n2, n3):
            pgrm(*clone_args(n.datadir, n1), check=0)
            n.start()
            assert n.is_in_recovery()
        conf2 = c.add(2, n2)
        conf3 = c.add(3, n3)
        for conf in (conf2, conf3):
            pgrm('-f', conf, '--verbose', 'standby', 'register', check=0)
        n4 = sb.new_instance('node4')
        conf4 = c.add(4, n4)

        # ---- 2. Rows, replicated; the standbys are read-only.
        c.write(5)
        c.check()
        assert_read_only(n2)
        assert_read_only(n3)
        assert n3.psql('select count(*) from pgbench_accounts', db='pgbench') == '100000'

        # ---- 3. node1 lost; node2 promoted.
        n1.stop('fast')
        r = timed('standby promote (node2)',
                  lambda: pgrm('-f', conf2, '--verbose', '--json', 'standby', 'promote', check=0))
        doc = parse_json(r, 'standby promote --json')
        assert doc['ok'] is True and doc['exit_code'] == 0, doc
        assert doc['data']['node']['id'] == 2, doc
        assert doc['data']['node']['type'] == 'primary', doc
        assert doc['data']['old_primary_node_id'] == 1, doc
        assert doc['data']['timeline'] == 2, doc
        assert not n2.is_in_recovery(), 'node2 still in recovery after promote'
        assert c.rows(n2) == sorted(c.committed), 'rows lost by the promotion'
        meta = c.metadata(n2)
        assert meta[1][0:2] == ('primary', False), f'old primary still active: {meta}'
        c.write(3)
        # node3 still points at the dead node1 until it follows: no new rows there yet.
        c.check(lagging=[n3])

        # ---- 4. node3 follows node2.
        r = timed('standby follow (node3 -> node2)',
                  lambda: pgrm('-f', conf3, 'standby', 'follow', check=0))
        assert 'now streams from node 2' in r.stdout, output(r)
        assert receiver(n3) == f'streaming|{n2.port}', receiver(n3)
        new = c.write(3)
        wait_until(lambda: set(new) <= set(c.rows(n3)), what='new rows of node2 on node3')
        c.check()

        # ---- 5. node4 cloned from node2, started, registered.
        pgrm(*clone_args(n4.datadir, n2), check=0)
        n4.start()
        wait_streaming_from(n4, n2)
        r = pgrm('-f', conf4, '--verbose', '--json', 'standby', 'register', check=0)
        doc = parse_json(r, 'standby register node4 --json')
        assert doc['data']['node']['upstream_node_id'] == 2, doc
        c.write(3)
        c.check()

        # ---- 6. node1 back as a standby of node2: the forced clone rewinds it.
        assert not n1.is_running()
        r = timed('forced clone (rejoin node1 -> node2)',
                  lambda: pgrm(*clone_args(n1.datadir, n2, '--force', '-f', conf1, '--json'), check=0))
        doc = parse_json(r, 'forced clone node1 --json')
        assert doc['ok'] is True, doc
        assert doc['data']['method'] == 'pg_rewind', doc
        assert doc['data']['delta'] is True, doc
        assert 'rewind_error' not in doc['data'], doc
        n1.start()
        assert n1.is_in_recovery(), 'node1 came back writable'
        assert_read_only(n1)
        wait_streaming_from(n1, n2)
        c.write(2)
        c.check()
        meta = c.metadata()
        assert meta[1] == ('standby', True, 2), meta

        # ---- 7. The original roles: node2 stopped, node1 promoted, node3 and node4
        # follow node1 (found from the metadata), node2 rejoined from node1.
        n2.stop('fast')
        r = timed('standby promote (node1)',
                  lambda: pgrm('-f', conf1, 'standby', 'promote', check=0))
        assert 'is now the primary' in r.stdout, output(r)
        assert not n1.is_in_recovery()
        c.write(2)
        c.check(lagging=[n3, n4])
        for conf, n in ((conf3, n3), (conf4, n4)):
            r = timed(f'standby follow ({n.name} -> node1)',
                      lambda conf=conf: pgrm('-f', conf, '--json', 'standby', 'follow', check=0))
            doc = parse_json(r, f'standby follow {n.name} --json')
            assert doc['data']['primary_node_id'] == 1, doc
            assert receiver(n) == f'streaming|{n1.port}', receiver(n)
        c.write(2)
        c.check()
        r = timed('forced clone (rejoin node2 -> node1, seed command without -d)',
                  lambda: pgrm('standby', 'clone', '--force', '-h', '127.0.0.1', '-p', n1.port,
                               '-U', 'postgres', '-R', 'postgres', '--verbose', '-D', n2.datadir,
                               '-f', conf2, check=0))
        n2.start()
        assert n2.is_in_recovery()
        assert_read_only(n2)
        wait_streaming_from(n2, n1)
        c.write(2)
        c.check()


# --------------------------------------------------------------------------------------
# Rejoining a diverged old primary


def _forced_rejoin(c: Cluster, node_id: int, source: harness.Instance, what: str) -> dict:
    inst = c.nodes[node_id]
    r = timed(what, lambda: pgrm(*clone_args(inst.datadir, source, '--force', '-f',
                                             c.confs[node_id], '--json'), check=0))
    doc = parse_json(r, f'{what} --json')
    assert doc['ok'] is True, doc
    assert doc['data']['method'] == 'pg_rewind', doc
    assert 'rewind_error' not in doc['data'], doc
    return doc


def _assert_rejoined(c: Cluster, node_id: int, primary: harness.Instance, lost: list):
    inst = c.nodes[node_id]
    inst.start()
    assert inst.is_in_recovery(), f'{inst.name} came back writable'
    assert_read_only(inst)
    wait_streaming_from(inst, primary)
    c.write(2)
    c.check()
    rows = c.rows(inst)
    assert not set(lost) & set(rows), f'rows of the dead timeline {lost} survived on {inst.name}'
    assert c.metadata()[node_id] == ('standby', True, c.id_of(primary)), c.metadata()


def test_rejoin_diverged_old_primary():
    """After the promotion, the old primary comes back on its own as a primary (it still
    is one), takes writes on the dead timeline, and is stopped; the forced clone must
    rewind those away."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1)
        n1, n2 = c.nodes[1], c.nodes[2]
        n1.stop('fast')
        pgrm('-f', c.confs[2], 'standby', 'promote', check=0)
        c.write(3)
        c.check()

        # Split brain, on purpose: node1 alone, writable, on timeline 1.
        n1.start()
        assert not n1.is_in_recovery()
        lost = list(range(-100, 0))
        n1.psql('insert into walk select g from generate_series(-100, -1) g', db='pgbench')
        n1.psql('checkpoint')
        n1.stop('fast')

        _forced_rejoin(c, 1, n2, 'forced clone (rejoin diverged node1)')
        _assert_rejoined(c, 1, n2, lost)


def _node1_ahead_and_down(sb: harness.Sandbox):
    """node1 primary, node2 its standby; node2 stopped, 50 rows committed on node1 alone
    (lost with it), node1 stopped, node2 started again, still a standby. Returns the
    cluster, node1, node2 and the lost rows."""
    c = small_cluster(sb, standbys=1)
    n1, n2 = c.nodes[1], c.nodes[2]
    n2.stop('fast')
    lost = list(range(-50, 0))
    n1.psql('insert into walk select g from generate_series(-50, -1) g', db='pgbench')
    n1.stop('fast')
    n2.start()
    return c, n1, n2, lost


def test_rejoin_right_after_promote():
    """PEERS lesson: the forced clone right after the promotion, with no pause, while the
    old primary holds WAL the new one never received (node2 was stopped first)."""
    with harness.Sandbox() as sb:
        c, n1, n2, lost = _node1_ahead_and_down(sb)
        assert n2.is_in_recovery()
        timed('standby promote (behind, node1 down)',
              lambda: pgrm('-f', c.confs[2], 'standby', 'promote', check=0))
        # No sleep: straight to the rejoin.
        _forced_rejoin(c, 1, n2, 'forced clone right after promote')
        _assert_rejoined(c, 1, n2, lost)


def test_rejoin_after_promote_outside_pgrm():
    """The same, promoted by pg_ctl (no CHECKPOINT from pgrm's promote): the clone's own
    checkpoint must make pg_rewind see the new timeline."""
    with harness.Sandbox() as sb:
        c, n1, n2, lost = _node1_ahead_and_down(sb)
        harness.run_as_pg([harness.pg_bin('pg_ctl'), '-D', n2.datadir, '-w', 'promote'])
        # The metadata, as pgrm's promote would have left it (the rejoin re-registers
        # node1 only under an active registered primary).
        n2.psql("update repmgr_test.repl_nodes set type = 'primary', active = true, "
                "upstream_node_id = null where id = 2; "
                "update repmgr_test.repl_nodes set active = false where id = 1", db='pgbench')
        _forced_rejoin(c, 1, n2, 'forced clone right after pg_ctl promote')
        _assert_rejoined(c, 1, n2, lost)


# --------------------------------------------------------------------------------------
# Refusals: each asserts the exit code and that nothing changed


def test_refuse_promote_on_primary():
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1)
        n1 = c.nodes[1]
        meta = c.metadata()
        pid = n1.pid()
        r = pgrm('-f', c.confs[1], 'standby', 'promote', check=1)
        assert 'not a standby' in r.stderr, output(r)
        assert n1.pid() == pid and not n1.is_in_recovery()
        assert c.metadata() == meta
        c.write(1)
        c.check()


def test_refuse_promote_while_primary_up():
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1)
        n1, n2 = c.nodes[1], c.nodes[2]
        meta = c.metadata()
        # Still streaming from the live primary.
        r = pgrm('-f', c.confs[2], 'standby', 'promote', check=1)
        assert 'still streams' in r.stderr, output(r)
        assert n2.is_in_recovery()
        assert c.metadata() == meta
        c.write(1)
        c.check()
        # Not streaming (no primary_conninfo), but the registered primary accepts writes.
        original = primary_conninfo(n2)
        n2.psql("alter system set primary_conninfo = ''")
        n2.psql('select pg_reload_conf()')
        wait_until(lambda: receiver(n2) == '', what='node2 to stop streaming')
        r = pgrm('-f', c.confs[2], 'standby', 'promote', check=1)
        assert 'accepts writes' in r.stderr, output(r)
        assert n2.is_in_recovery()
        assert c.metadata() == meta
        n2.psql("alter system set primary_conninfo = '" + original.replace("'", "''") + "'")
        n2.psql('select pg_reload_conf()')
        c.write(1)
        c.check()


def test_refuse_follow_a_standby():
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=2)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        meta = c.metadata()
        before = primary_conninfo(n3)
        r = pgrm('-f', c.confs[3], 'standby', 'follow', '127.0.0.1', '-p', n2.port, check=1)
        assert 'not a primary' in r.stderr, output(r)
        assert primary_conninfo(n3) == before
        assert receiver(n3) == f'streaming|{n1.port}'
        assert c.metadata() == meta
        c.write(1)
        c.check()


def test_refuse_follow_across_fork():
    """node3 replayed WAL that node2 never received; node2 is promoted: node3 cannot
    follow it, and the refusal says how to rejoin (then the rejoin works)."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=2)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        n2.stop('fast')
        # Committed on node1 and replayed on node3, never seen by node2: lost with node1.
        lost = list(range(-30, 0))
        n1.psql('insert into walk select g from generate_series(-30, -1) g', db='pgbench')
        wait_until(lambda: len(c.rows(n3)) == len(c.committed) + len(lost),
                   what='node3 to replay the rows node2 never gets')
        n1.stop('fast')
        n2.start()
        assert n2.is_in_recovery()
        pgrm('-f', c.confs[2], 'standby', 'promote', check=0)
        c.write(2)

        before = primary_conninfo(n3)
        r = pgrm('-f', c.confs[3], 'standby', 'follow', check=1)
        assert 'cannot follow' in r.stderr, output(r)
        assert 'repmgr node rejoin 127.0.0.1' in r.stderr, output(r)
        r = pgrm('-f', c.confs[3], '--json', 'standby', 'follow', check=1)
        doc = parse_json(r, 'refused follow --json')
        assert doc['ok'] is False and doc['error']['code'] == 1, doc
        assert 'node rejoin' in doc['error'].get('hint', ''), doc
        assert primary_conninfo(n3) == before
        assert n3.is_in_recovery()
        assert not set(c.committed[-2:]) & set(c.rows(n3))

        # The way out the hint names; node rejoin starts node3 on its own configuration,
        # so it gets its own port there (a clone carries node1's).
        n3.stop('fast')
        n3.append_conf({'port': n3.port, 'unix_socket_directories': str(n3.socket_dir)})
        r = timed('node rejoin (node3 past the fork)',
                  lambda: pgrm('-f', c.confs[3], '--json', 'node', 'rejoin', '-h', '127.0.0.1', '-p', n2.port,
                               check=0))
        doc = parse_json(r, 'node rejoin node3 --json')
        assert doc['data']['method'] == 'pg_rewind' and 'rewind_error' not in doc['data'], doc
        assert n3.is_in_recovery(), 'node3 came back writable'
        c.write(2)
        c.check()
        assert not set(lost) & set(c.rows(n3)), f'rows of the dead timeline {lost} survived on node3'


def test_follow_past_an_incomplete_record():
    """node3 received the start of a 32 MB WAL record that node1 died sending; node2 never
    got any of it and is promoted. node3's extra bytes are no transaction (replay cannot
    reach them), so it follows node2, loses nothing, and replays node2's writes."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=2)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        end = n1.psql('select pg_current_wal_lsn()')
        for n in (n2, n3):
            wait_until(lambda n=n: n.psql(f"select pg_last_wal_replay_lsn() >= '{end}'") == 't',
                       what=f'{n.name} to replay up to {end}')
        # node3's WAL receiver holds still, so what node1 sends next waits in the socket
        # buffers; node2 is down. Then node1 dies partway through writing one big record.
        receiver_pid = int(n3.psql('select pid from pg_stat_wal_receiver'))
        os.kill(receiver_pid, signal.SIGSTOP)
        try:
            n2.stop('fast')
            n1.psql("select pg_logical_emit_message(false, 'pgrm-test', repeat('x', 32 * 1024 * 1024))")
            # Until the WAL writer flushes part of the record and node1 sends it to node3.
            wait_until(lambda: n1.psql(f"select sent_lsn > '{end}' from pg_stat_replication") == 't',
                       what='node1 to send part of the record to node3')
            n1.kill9()
        finally:
            os.kill(receiver_pid, signal.SIGCONT)
        wait_until(lambda: not harness.streaming(n3), what='node3 to read what was in flight')
        received, replayed = n3.psql('select pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()').split('|')
        assert n3.psql(f"select '{received}'::pg_lsn > '{end}'::pg_lsn") == 't', (
            f'setup: node3 received nothing past {end} (received {received})')
        assert replayed == end, f'setup: node3 replayed {replayed}, not {end}'

        n2.start()
        pgrm('-f', c.confs[2], 'standby', 'promote', check=0)
        c.nodes.pop(1)
        c.write(2)
        r = pgrm('-f', c.confs[3], 'standby', 'follow')
        assert r.returncode == 0, output(r)
        assert 'node 3 now streams from node 2' in r.stdout, output(r)
        c.check()


def test_refuse_forced_clone_onto_running_server():
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1)
        n1, n2 = c.nodes[1], c.nodes[2]
        meta = c.metadata()
        # Onto the running standby, and onto the running primary (the walkthrough's
        # rejoin command, with node1 not stopped first).
        for target, source, conf in ((n2, n1, c.confs[2]), (n1, n2, c.confs[1])):
            pid = target.pid()
            auto = (target.datadir / 'postgresql.auto.conf').read_text()
            r = pgrm(*clone_args(target.datadir, source, '--force', '-f', conf), check=1)
            assert 'running' in r.stderr, output(r)
            assert target.pid() == pid, f'{target.name} restarted'
            assert (target.datadir / 'postgresql.auto.conf').read_text() == auto
            if target is n1:
                assert not (n1.datadir / 'standby.signal').exists(), 'standby.signal written'
        assert not n1.is_in_recovery() and n2.is_in_recovery()
        assert c.metadata() == meta
        c.write(1)
        c.check()


if __name__ == '__main__':
    rc = harness.main(globals())
    if TIMINGS:
        print('# timings: ' + '; '.join(f'{w}: {t:.2f} s' for w, t in TIMINGS), flush=True)
    sys.exit(rc)
