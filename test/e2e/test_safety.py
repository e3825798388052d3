#!/usr/bin/env python3
"""End to end: safety judgements on real servers.

- A primary that answers but will not let us in (refuses our password, has no
  connection slot left) is alive: standby promote and standby follow refuse rather
  than take it for gone, and cluster show says why it could not be asked.
- Promote's metadata change is one transaction: a failure in its middle leaves the
  metadata as it was; promote and follow do not wait for synchronous standbys that
  cannot answer; a follow whose old upstream sends WAL past the fork as it switches
  fails at once.
- No password is stored in the metadata (every node replicates it): register takes it
  out of the conninfo and says so, a schema upgrade takes out stored ones, and the
  nodes then find it in a password file.
- Node identity: a node registered as host=127.0.0.1 is the node a standby reaches
  as localhost (its upstream in standby register, the primary named to follow).

pgrm runs as root (harness.pgrm's default), through the `repmgr` persona symlink.
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (clone_args, hold_all_connections, make_primary, output, parse_json, pgrm,  # noqa: E402
                     primary_conninfo, receiver, small_cluster, wait_streaming_from, wait_until,
                     write_conf)


# --------------------------------------------------------------------------------------
# Helpers


def require_password(inst: harness.Instance, password: str = 'secret') -> str:
    """Makes inst ask for the superuser's password on TCP connections to database
    pgbench (where the metadata lives; the harness's own psql uses database postgres).
    Returns the pg_hba.conf line, for allow_again()."""
    inst.psql(f"alter role {inst.superuser} password '{password}'")
    line = f'host pgbench {inst.superuser} 127.0.0.1/32 scram-sha-256\n'
    hba = inst.datadir / 'pg_hba.conf'
    hba.write_text(line + hba.read_text())
    inst.psql('select pg_reload_conf()')
    return line


def allow_again(inst: harness.Instance, line: str):
    hba = inst.datadir / 'pg_hba.conf'
    hba.write_text(hba.read_text().replace(line, '', 1))
    inst.psql('select pg_reload_conf()')


def stop_streaming(standby: harness.Instance) -> str:
    """Empties the standby's primary_conninfo, so promote gets past its "still streams"
    check and asks the registered nodes; returns the old value for resume_streaming()."""
    original = primary_conninfo(standby)
    standby.psql("alter system set primary_conninfo = ''")
    standby.psql('select pg_reload_conf()')
    wait_until(lambda: receiver(standby) == '', what=f'{standby.name} to stop streaming')
    return original


def resume_streaming(standby: harness.Instance, original: str):
    standby.psql("alter system set primary_conninfo = '" + original.replace("'", "''") + "'")
    standby.psql('select pg_reload_conf()')


# --------------------------------------------------------------------------------------
# A live primary we cannot use is not a lost one


def test_promote_refuses_when_the_primary_refuses_our_password():
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1)
        n1, n2 = c.nodes[1], c.nodes[2]
        original = stop_streaming(n2)
        line = require_password(n1)
        meta = c.metadata(n2)

        # No password at all, then a wrong one: both are ERR_BAD_PASSWORD, and nothing
        # changes: node2 stays a standby, node1 the one writable node.
        for env in (None, {'PGPASSWORD': 'wrong'}):
            r = pgrm('-f', c.confs[2], 'standby', 'promote', env=env, check=9)
            assert 'node 1' in r.stderr and 'password refused' in r.stderr, output(r)
            assert n2.is_in_recovery(), f'node2 was promoted\n{output(r)}'
            assert c.metadata(n2) == meta
        assert not n1.is_in_recovery()

        # cluster show: node1 runs, and why it could not be asked.
        r = pgrm('-f', c.confs[2], 'cluster', 'show', check=0)
        row = next(l for l in r.stdout.splitlines() if '| node1' in l or ' node1 ' in l)
        assert 'running, password refused' in row, output(r)
        doc = parse_json(pgrm('-f', c.confs[2], '--json', 'cluster', 'show', check=0), 'cluster show --json')
        node1 = next(n for n in doc['data']['nodes'] if n['id'] == 1)
        assert node1['connection_failure'] == 'password_refused', node1
        assert node1['status'] == 'running, password refused', node1

        allow_again(n1, line)
        resume_streaming(n2, original)
        c.write(1)
        c.check()


def test_promote_refuses_when_the_primary_has_no_slot_left():
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1,
                          extra_conf={'max_connections': 12, 'superuser_reserved_connections': 0})
        n1, n2 = c.nodes[1], c.nodes[2]
        original = stop_streaming(n2)
        meta = c.metadata(n2)
        release = hold_all_connections(sb, n1)
        r = pgrm('-f', c.confs[2], 'standby', 'promote', check=6)
        assert 'node 1' in r.stderr and 'too many clients' in r.stderr, output(r)
        assert n2.is_in_recovery(), f'node2 was promoted\n{output(r)}'
        assert c.metadata(n2) == meta
        release()
        assert not n1.is_in_recovery()
        resume_streaming(n2, original)
        c.write(1)
        c.check()


def test_follow_refuses_while_a_node_refuses_our_password():
    """node1 refuses our password; node2 was promoted by force (the daemon's way). node1
    may still take writes, so node3 must not pick node2 on its own."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=2)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        require_password(n1)
        # node3 stops receiving first and node2 has at least what node3 has: WAL node1
        # writes later (its background writer's snapshot record, say) would put node3
        # past node2's fork, and the follow below would rightly be refused.
        stop_streaming(n3)
        received = n3.psql('select pg_last_wal_receive_lsn()')
        wait_until(lambda: n2.psql(f"select pg_last_wal_receive_lsn() >= '{received}'") == 't',
                   what='node2 to have received what node3 has')
        stop_streaming(n2)
        pgrm('-f', c.confs[2], '--force', 'standby', 'promote', check=0)
        before = primary_conninfo(n3)
        r = pgrm('-f', c.confs[3], 'standby', 'follow', check=9)
        assert 'node 1' in r.stderr and 'password refused' in r.stderr, output(r)
        assert primary_conninfo(n3) == before
        # Named, the new primary is followed: the user decided.
        pgrm('-f', c.confs[3], 'standby', 'follow', '127.0.0.1', '-p', n2.port, check=0)


def test_unregister_refuses_a_former_primary_that_refuses_our_password():
    """node2 was promoted by force while node1, now an inactive former primary in the
    metadata, still runs and refuses our password: it may take writes, so master
    unregister keeps its record."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1)
        n1, n2 = c.nodes[1], c.nodes[2]
        require_password(n1)
        stop_streaming(n2)
        pgrm('-f', c.confs[2], '--force', 'standby', 'promote', check=0)
        assert c.metadata(n2)[1] == ('primary', False, None)
        r = pgrm('-f', c.confs[2], 'master', 'unregister', '--node-id', '1', check=9)
        assert 'node 1' in r.stderr and 'password refused' in r.stderr, output(r)
        assert c.metadata(n2)[1] == ('primary', False, None)


# --------------------------------------------------------------------------------------
# Promote's metadata change: all or nothing


REFUSE_DEACTIVATION = """
create function public.refuse_deactivation() returns trigger language plpgsql as $$
begin
    if old.active and not new.active then
        raise exception 'injected failure';
    end if;
    return new;
end $$;
create trigger refuse_deactivation before update on repmgr_test.repl_nodes
    for each row execute function public.refuse_deactivation();
"""


def test_promote_changes_the_metadata_in_one_transaction():
    """A trigger makes the statement that marks the old primary inactive fail, after the
    promoted node's own row was rewritten: promote fails (ERR_DB_QUERY), saying the
    server was promoted but the metadata left as it was, and it was: one active primary,
    node2 still its standby, no standby_promote event."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1)
        n1, n2 = c.nodes[1], c.nodes[2]
        n1.psql(REFUSE_DEACTIVATION, db='pgbench')
        wait_until(lambda: n2.psql("select count(*) from pg_trigger where tgname = 'refuse_deactivation'",
                                   db='pgbench') == '1', what='node2 to replay the trigger')
        meta = c.metadata(n2)
        events_sql = 'select count(*) from repmgr_test.events'
        events = n2.psql(events_sql, db='pgbench')
        n1.stop()
        r = pgrm('-f', c.confs[2], 'standby', 'promote', check=7)
        assert c.metadata(n2) == meta, f'{c.metadata(n2)}\n{output(r)}'
        assert n2.psql(events_sql, db='pgbench') == events
        assert not n2.is_in_recovery(), 'the server itself was promoted'
        assert 'metadata was left unchanged' in r.stderr and 'injected failure' in r.stderr, output(r)


def test_promote_and_follow_do_not_wait_for_synchronous_standbys():
    """node2's own postgresql.conf names a synchronous standby that never connects (the
    chaos suite's standbys whose WAL was past the new primary's fork): promoted, its
    metadata commits there without waiting for it, and so does node3's record when node3
    follows it (sigstop-primary: a follower stayed in following_new_primary), while a
    client's write still waits."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=2)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        n2.append_conf({'synchronous_standby_names': 'ANY 1 (nobody)'}, header='no standby answers')
        n2.psql('select pg_reload_conf()')
        n1.stop()
        r = pgrm('-f', c.confs[2], '--force', 'standby', 'promote', check=0, timeout=120)
        assert n2.psql('select type from repmgr_test.repl_nodes where id = 2', db='pgbench') == 'primary', output(r)
        assert n2.psql("select setting from pg_settings where name = 'synchronous_commit'") == 'on'
        r = pgrm('-f', c.confs[3], 'standby', 'follow', '127.0.0.1', '-p', n2.port, check=0, timeout=90)
        wait_streaming_from(n3, n2)
        assert n2.psql('select upstream_node_id from repmgr_test.repl_nodes where id = 3', db='pgbench') == '2', \
            output(r)


def test_bookkeeping_does_not_wait_for_synchronous_standbys():
    """node1's synchronous_standby_names names a standby that never connects (set before
    its standbys exist, or one down for maintenance): master register, standby register,
    service pause and unpause and standby unregister commit their metadata without
    waiting for it (each hung for good before), while a client's write still waits."""
    with harness.Sandbox() as sb:
        n1 = make_primary(sb, scale=None)
        n1.append_conf({'synchronous_standby_names': 'FIRST 1 (nobody)'}, header='no standby answers')
        n1.psql('select pg_reload_conf()')
        conf1 = write_conf(sb, 1, n1)
        pgrm('-f', conf1, 'master', 'register', check=0, timeout=60)
        n2 = sb.new_instance('node2')
        pgrm(*clone_args(n2.datadir, n1), check=0, timeout=120)
        n2.start()
        wait_streaming_from(n2, n1)
        conf2 = write_conf(sb, 2, n2)
        pgrm('-f', conf2, 'standby', 'register', check=0, timeout=60)
        pgrm('-f', conf2, 'service', 'pause', check=0, timeout=60)
        pgrm('-f', conf2, 'service', 'unpause', check=0, timeout=60)
        pgrm('-f', conf2, 'standby', 'unregister', check=0, timeout=60)
        events = n1.psql("select string_agg(event, ' ' order by id) from repmgr_test.events", db='pgbench')
        assert events.split() == ['primary_register', 'standby_register', 'daemon_pause', 'daemon_unpause',
                                  'standby_unregister'], events
        client = harness.popen_as_pg([harness.pg_bin('psql'), '-X', '-h', '127.0.0.1', '-p', str(n1.port), '-U',
                                      'postgres', '-d', 'pgbench', '-c', 'create table waits ()'],
                                     log=sb.path('client.log'))
        sb.on_cleanup(lambda: harness.end_process_group(client))
        waiting = "select count(*) from pg_stat_activity where wait_event = 'SyncRep'"
        wait_until(lambda: n1.psql(waiting) == '1', what="the client's write to wait for a synchronous standby")


def test_follow_fails_at_once_when_the_old_upstream_sends_wal_past_the_fork_as_it_switches():
    """A frozen primary that thaws as a standby switches to its successor (chaos
    sigstop-primary): node3 is at node2's fork when follow checks it, then node1 sends
    it more WAL before the switch (node3's reload command lets node1's sender run first):
    replay stops past the fork, and follow says so at once, with the rejoin to run,
    instead of waiting --wait out."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=2)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        sender = int(n1.psql("select pid from pg_stat_replication where application_name = 'node3'"))
        os.kill(sender, signal.SIGSTOP)
        sb.on_cleanup(lambda: harness.thaw([sender]))
        received = n3.psql('select pg_last_wal_receive_lsn()')
        wait_until(lambda: n2.psql(f"select pg_last_wal_receive_lsn() >= '{received}'") == 't',
                   what='node2 to have received what node3 has')
        stop_streaming(n2)
        n1.psql('insert into walk values (100)', db='pgbench')   # past node2's fork, held for node3
        past = n1.psql('select pg_current_wal_lsn()')
        pgrm('-f', c.confs[2], '--force', 'standby', 'promote', check=0)
        psql = f"{harness.pg_bin('psql')} -X -At -h 127.0.0.1 -p {n3.port} -U postgres -d postgres"
        script = sb.path('thaw-then-reload.sh')
        script.write_text('#!/bin/sh\n'
                          f'kill -CONT {sender}\n'
                          'i=0\n'
                          f'until [ "$({psql} -c "select pg_last_wal_replay_lsn() >= \'{past}\'")" = t ]; do\n'
                          '  i=$((i + 1)); [ $i -gt 300 ] && exit 1; sleep 0.1\n'
                          'done\n'
                          f'exec {psql} -c "select pg_reload_conf()"\n')
        script.chmod(0o755)
        with open(c.confs[3], 'a') as f:
            f.write(f"service_reload_command='{script}'\n")
        r = pgrm('-f', c.confs[3], 'standby', 'follow', '127.0.0.1', '-p', n2.port, '--wait', '40', check=1,
                 timeout=120)
        assert 'its old upstream sent WAL past the fork while it switched' in r.stderr, output(r)
        assert 'node rejoin' in r.stderr, output(r)

        # node3's walreceiver fetched node2's timeline history, then streamed nothing of
        # it: node3 is still on timeline 1, past the fork, and a second follow says so
        # before it changes anything (the daemon elects again and runs it).
        assert '00000002.history' in n3.psql("select string_agg(name, ' ') from pg_ls_waldir()"), \
            'node3 fetched no history of timeline 2'
        r = pgrm('-f', c.confs[3], 'standby', 'follow', '127.0.0.1', '-p', n2.port, '--wait', '40', check=1,
                 timeout=120)
        assert 'node 3 cannot follow the new primary' in r.stderr, output(r)
        assert 'node rejoin' in r.stderr, output(r)


# --------------------------------------------------------------------------------------
# Passwords at rest


def test_no_password_is_stored_in_the_metadata():
    with harness.Sandbox() as sb:
        n1 = make_primary(sb, scale=None)
        n1.psql("create role repmgr login superuser password 'secret'")
        hba = n1.datadir / 'pg_hba.conf'
        hba.write_text('host pgbench repmgr 127.0.0.1/32 scram-sha-256\n' + hba.read_text())
        n1.psql('select pg_reload_conf()')
        conf1 = write_conf(sb, 1, n1, conninfo=f'host=127.0.0.1 port={n1.port} user=repmgr '
                                                f'dbname=pgbench password=secret')
        stored_sql = 'select conninfo from repmgr_test.repl_nodes where id = {}'

        # Registered: the row holds no password, and the warning says where it goes.
        r = pgrm('-f', conf1, 'master', 'register', check=0)
        stored = n1.psql(stored_sql.format(1), db='pgbench')
        assert 'secret' not in stored and 'password' not in stored, stored
        assert sorted(stored.split()) == sorted(f'host=127.0.0.1 port={n1.port} user=repmgr dbname=pgbench'.split()), stored
        assert 'WARNING' in r.stderr and '.pgpass' in r.stderr, output(r)

        # Through the stored conninfo the password comes from a password file.
        doc = parse_json(pgrm('-f', conf1, '--json', 'cluster', 'show', check=0), 'cluster show --json')
        assert doc['data']['nodes'][0]['connection_failure'] == 'password_refused', doc
        pgpass = sb.path('pgpass')
        pgpass.write_text(f'127.0.0.1:{n1.port}:pgbench:repmgr:secret\n')
        pgpass.chmod(0o600)
        doc = parse_json(pgrm('-f', conf1, '--json', 'cluster', 'show', env={'PGPASSFILE': pgpass}, check=0),
                         'cluster show --json with a password file')
        assert doc['data']['nodes'][0]['role_found'] == 'primary', doc

        # A password an older pgrm stored goes at the next schema install or upgrade.
        n1.psql("insert into repmgr_test.repl_nodes (id, cluster, name, conninfo, type) values "
                "(9, 'test', 'old', 'host=127.0.0.1 port=1 user=repmgr password=hunter2', 'standby')",
                db='pgbench')
        r = pgrm('-f', conf1, '--force', 'master', 'register', check=0)
        stored = n1.psql(stored_sql.format(9), db='pgbench')
        assert sorted(stored.split()) == ['host=127.0.0.1', 'port=1', 'user=repmgr'], stored
        assert 'node 9' in r.stderr, output(r)


# --------------------------------------------------------------------------------------
# Node identity


def test_a_host_name_is_the_node_registered_by_its_address():
    """Every node is registered as host=127.0.0.1; node3 is cloned from node2 as
    localhost (so its WAL receiver's sender_host is "localhost"): standby register
    records node2 as its upstream, and standby follow localhost -p <node1> records node1."""
    with harness.Sandbox() as sb:
        c = small_cluster(sb, standbys=1)
        n1, n2 = c.nodes[1], c.nodes[2]
        n3 = sb.new_instance('node3')
        pgrm(*clone_args(n3.datadir, n2)[:-1], 'localhost', check=0)
        n3.start()
        wait_streaming_from(n3, n2)
        assert n3.psql('select sender_host from pg_stat_wal_receiver') == 'localhost'
        r = pgrm('-f', c.add(3, n3), 'standby', 'register', check=0)
        assert c.metadata(n1)[3] == ('standby', True, 2), f'{c.metadata(n1)}\n{output(r)}'

        r = pgrm('-f', c.confs[3], 'standby', 'follow', 'localhost', '-p', n1.port, check=0)
        assert c.metadata(n1)[3] == ('standby', True, 1), f'{c.metadata(n1)}\n{output(r)}'
        c.write(1)
        c.check()


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
