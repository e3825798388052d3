#!/usr/bin/env python3
"""End to end: master register, standby clone (pg_basebackup and rsync, fresh and forced
delta, rsync over ssh from another host in a network namespace), standby register, cluster show/event, and the refusals around them, following the
seed's walkthrough ("Usage walkthrough" of repmgr 1.0's README) on real servers.

pgrm runs as root here (harness.pgrm's default), as users run it on this machine: it must
itself run the PostgreSQL programs (pg_basebackup, rsync) as the postgres OS user.
"""

import os
import re
import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (assert_read_only, clone_args, make_primary, output,  # noqa: E402
                     parse_json, pgrm, wait_streaming, wait_until, write_conf)


# --------------------------------------------------------------------------------------
# Helpers


def snapshot(path: Path) -> dict:
    """Relative path -> (mode, uid, size, content or None) for everything under path."""
    snap = {}
    for p in sorted(path.rglob('*')):
        st = p.lstat()
        content = p.read_bytes() if p.is_file() else None
        snap[str(p.relative_to(path))] = (st.st_mode, st.st_uid, st.st_size, content)
    return snap


def pg_uid() -> int:
    return harness._PG_PW.pw_uid if harness._PG_PW else os.geteuid()


def assert_standby_files(target: Path, what: str):
    assert (target / 'standby.signal').is_file(), f'{what}: no standby.signal in {target}'
    auto = (target / 'postgresql.auto.conf').read_text()
    lines = [l for l in auto.splitlines() if l.strip().startswith('primary_conninfo')]
    assert len(lines) == 1, f'{what}: expected one primary_conninfo line:\n{auto}'
    assert 'host=127.0.0.1' in lines[0], f'{what}: {lines[0]}'
    assert 'password' not in auto.lower(), f'{what}: a password in postgresql.auto.conf:\n{auto}'
    st = target.stat()
    assert st.st_uid == pg_uid(), f'{what}: {target} owned by uid {st.st_uid}, not postgres'
    assert stat.S_IMODE(st.st_mode) == 0o700, f'{what}: {target} mode {oct(st.st_mode)}'
    # Nothing in the copy may belong to root: the server could not read or write it.
    foreign = [str(p) for p in [target, *target.rglob('*')] if p.lstat().st_uid != pg_uid()]
    assert not foreign, f'{what}: files not owned by postgres: {foreign[:10]}'


def wait_count(inst: harness.Instance, sql: str, expected: str, timeout: float = 60):
    wait_until(lambda: inst.psql(sql, db='pgbench') == expected, timeout=timeout,
               what=f'{inst.name}: {sql} = {expected}')


# --------------------------------------------------------------------------------------
# The walkthrough, and the refusals that need a running cluster


def test_walkthrough_register_clone():
    with harness.Sandbox() as sb:
        # ---- 1. The primary, with sample data, registered.
        n1 = make_primary(sb)
        assert n1.psql('select count(*) from pgbench_accounts', db='pgbench') == '100000'
        conf1 = write_conf(sb, 1, n1, data_directory=False)
        r = pgrm('-f', conf1, '--verbose', 'master', 'register', check=0)
        assert n1.psql("select count(*) from pg_namespace where nspname = 'repmgr_test'",
                       db='pgbench') == '1', 'schema repmgr_test missing'
        rows = n1.psql('select id, type, active from repmgr_test.repl_nodes order by id',
                       db='pgbench')
        assert rows == '1|primary|t', rows
        events = n1.psql('select count(*) from repmgr_test.events where node_id = 1',
                         db='pgbench')
        assert int(events) >= 1, f'no event for node 1\n{output(r)}'

        # Registering again without --force is refused and changes nothing;
        # with --force (and --json) it updates the record.
        r = pgrm('-f', conf1, 'master', 'register', check=1)
        assert 'already registered' in r.stderr + r.stdout, output(r)
        r = pgrm('-f', conf1, '--json', '--force', 'master', 'register', check=0)
        doc = parse_json(r, 'master register --json')
        assert doc['ok'] is True and doc['exit_code'] == 0, doc
        assert doc['data']['node']['id'] == 1, doc
        assert doc['data']['node']['type'] == 'primary', doc
        assert doc['data']['schema'] == 'repmgr_test', doc
        assert doc['data']['updated'] is True, doc
        assert n1.psql('select count(*) from repmgr_test.repl_nodes', db='pgbench') == '1'

        # ---- 2. Two standbys cloned with the seed's command line.
        n2 = sb.new_instance('node2')
        r = pgrm(*clone_args(n2.datadir, n1), check=0)
        assert_standby_files(n2.datadir, 'clone node2')

        n3 = sb.new_instance('node3')
        conf3 = write_conf(sb, 3, n3, data_directory=False)
        r = pgrm('-f', conf3, '--json', *clone_args(n3.datadir, n1), check=0)
        doc = parse_json(r, 'standby clone --json')
        assert doc['ok'] is True, doc
        assert doc['data']['method'] == 'pg_basebackup', doc
        assert doc['data']['delta'] is False, doc
        assert doc['data']['target'] == str(n3.datadir), doc
        assert doc['data']['source_version_num'] >= 120000, doc
        assert_standby_files(n3.datadir, 'clone node3')

        n2.start()
        n3.start()
        assert n2.is_in_recovery() and n3.is_in_recovery()
        wait_streaming(n2)
        wait_streaming(n3)
        conf2 = write_conf(sb, 2, n2, data_directory=False)
        r = pgrm('-f', conf2, '--verbose', 'standby', 'register', check=0)
        r = pgrm('-f', conf3, '--json', 'standby', 'register', check=0)
        doc = parse_json(r, 'standby register --json')
        assert doc['ok'] is True, doc
        assert doc['data']['node']['id'] == 3, doc
        assert doc['data']['node']['type'] == 'standby', doc
        assert doc['data']['node']['upstream_node_id'] == 1, doc
        assert doc['data']['cluster'] == 'test', doc

        # The primary streams to both, each under its own application_name.
        wait_until(lambda: n1.psql("select application_name from pg_stat_replication "
                                   "where state = 'streaming' order by 1") == 'node2\nnode3',
                   what='node1 streaming to node2 and node3')

        # ---- 3. Replication works; standbys are read-only.
        n1.psql('create table walk(x int primary key); insert into walk values (1)',
                db='pgbench')
        wait_count(n2, 'select count(*) from walk', '1')
        wait_count(n3, 'select count(*) from walk', '1')
        for s in (n2, n3):
            assert_read_only(s, 'insert into walk values (2)')

        # ---- 4. Metadata: three nodes, standbys upstream of node 1 (on the primary and,
        # replicated, on a standby).
        expected = '1|primary|\n2|standby|1\n3|standby|1'
        sql = ("select id, type, coalesce(upstream_node_id::text, '') "
               'from repmgr_test.repl_nodes order by id')
        assert n1.psql(sql, db='pgbench') == expected, n1.psql(sql, db='pgbench')
        wait_until(lambda: n2.psql(sql, db='pgbench') == expected, what='metadata on node2')

        def show():
            r = pgrm('-f', conf1, '--json', 'cluster', 'show', check=0)
            return parse_json(r, 'cluster show --json')
        doc = show()
        nodes = {n['id']: n for n in doc['data']['nodes']}
        assert sorted(nodes) == [1, 2, 3], doc
        assert nodes[1]['role_found'] == 'primary', nodes[1]
        assert nodes[1]['type'] == 'primary', nodes[1]
        for i in (2, 3):
            assert nodes[i]['role_found'] == 'standby', nodes[i]
            assert nodes[i]['type'] == 'standby', nodes[i]
            assert nodes[i]['upstream_node_id'] == 1, nodes[i]
            assert nodes[i]['streaming'] is True, nodes[i]
            assert nodes[i]['error'] is None, nodes[i]
        # The table form, too.
        r = pgrm('-f', conf1, 'cluster', 'show', check=0)
        for name in ('node1', 'node2', 'node3'):
            assert name in r.stdout, output(r)

        # ---- 5. cluster event --json names the nodes and their events.
        r = pgrm('-f', conf1, '--json', 'cluster', 'event', check=0)
        doc = parse_json(r, 'cluster event --json')
        seen = {(e['node_id'], e['event']) for e in doc['data']['events']}
        for want in [(1, 'primary_register'), (2, 'standby_register'), (3, 'standby_register'),
                     (3, 'standby_clone')]:
            assert want in seen, f'{want} not in {sorted(seen)}'
        assert all(e['successful'] is True for e in doc['data']['events']), doc
        r = pgrm('-f', conf1, '--json', 'cluster', 'event', '--node', '2', check=0)
        doc = parse_json(r, 'cluster event --node 2 --json')
        assert doc['data']['events'], doc
        assert {e['node_id'] for e in doc['data']['events']} == {2}, doc

        # ---- 6. Refusals that need this cluster; each changes nothing.
        nodes_before = n1.psql('select * from repmgr_test.repl_nodes order by id', db='pgbench')

        # Non-empty target without --force.
        junk = sb.mkdir_for_pg('junk')
        (junk / 'keep.txt').write_text('precious\n')
        (junk / 'sub').mkdir()
        (junk / 'sub' / 'more').write_text('more\n')
        before = snapshot(junk)
        r = pgrm(*clone_args(junk, n1), check=1)
        assert 'not empty' in r.stderr + r.stdout, output(r)
        assert snapshot(junk) == before, 'clone changed a non-empty directory it refused'

        # A running standby's data directory, even with --force.
        pid2 = n2.pid()
        before = snapshot(n2.datadir / 'global')
        auto_before = (n2.datadir / 'postgresql.auto.conf').read_text()
        r = pgrm(*clone_args(n2.datadir, n1, '--force'), check=1)
        assert 'running' in r.stderr + r.stdout, output(r)
        assert n2.is_running() and n2.pid() == pid2, 'node2 stopped or restarted'
        assert (n2.datadir / 'postgresql.auto.conf').read_text() == auto_before
        assert snapshot(n2.datadir / 'global') == before, 'files of a running server changed'

        # standby register on the primary; master register on a standby.
        r = pgrm('-f', conf1, 'standby', 'register', check=1)
        assert 'not a standby' in r.stderr + r.stdout, output(r)
        r = pgrm('-f', conf2, 'master', 'register', check=1)
        assert 'is a standby' in r.stderr + r.stdout, output(r)
        r = pgrm('-f', conf2, '--force', 'master', 'register', check=1)

        # standby register in a cluster whose primary was never registered.
        conf_other = write_conf(sb, 2, n2, cluster='other', name='other2', data_directory=False)
        r = pgrm('-f', conf_other, 'standby', 'register')
        assert r.returncode != 0, output(r)
        assert 'has no registered primary' in r.stderr + r.stdout, output(r)
        assert n1.psql("select count(*) from pg_namespace where nspname = 'repmgr_other'",
                       db='pgbench') == '0'

        # -w asking for more WAL segments than wal_keep_size (256MB = 16 segments) keeps.
        wtarget = sb.path('wal_too_few')
        r = pgrm(*clone_args(wtarget, n1, '-w', '100000'), check=1)
        assert 'wal_keep_size' in r.stderr + r.stdout, output(r)
        assert not wtarget.exists(), 'refused clone created its target'
        # ... while a -w it can satisfy is accepted (checked with a dry run).
        pgrm(*clone_args(wtarget, n1, '-w', '16', after=['--dry-run']), check=0)
        assert not wtarget.exists()

        # --dry-run prints the plan and creates nothing.
        dtarget = sb.path('dry')
        r = pgrm(*clone_args(dtarget, n1, after=['--dry-run']), check=0)
        assert '1. ' in r.stdout and 'pg_basebackup' in r.stdout, output(r)
        assert 'standby.signal' in r.stdout, output(r)
        assert not dtarget.exists(), 'dry run created the target'
        r = pgrm('--json', *clone_args(dtarget, n1, after=['--dry-run', '--method', 'rsync']), check=0)
        doc = parse_json(r, 'standby clone --dry-run --json')
        assert doc['data']['dry_run'] is True and doc['data']['method'] == 'rsync', doc
        assert doc['data']['steps'], doc
        assert not dtarget.exists(), 'dry run created the target'
        # A dry run over a running server still refuses.
        pgrm(*clone_args(n2.datadir, n1, '--force', after=['--dry-run']), check=1)

        assert n1.psql('select * from repmgr_test.repl_nodes order by id',
                       db='pgbench') == nodes_before, 'a refusal changed the metadata'

        # ---- 7. The rsync method (local rsync), into a new directory. node1's pg_wal holds
        # older segments (kept by wal_keep_size) the copy must leave out: it needs the WAL
        # from its backup's start on.
        for _ in range(3):
            n1.psql('select pg_switch_wal(); insert into walk values (-1); delete from walk where x = -1',
                    db='pgbench')
        n1.psql('checkpoint')
        source_segments = sorted(p.name for p in (n1.datadir / 'pg_wal').iterdir() if len(p.name) == 24)
        n4 = sb.new_instance('node4')
        r = pgrm(*clone_args(n4.datadir, n1, after=['--method', 'rsync']), check=0)
        assert (n4.datadir / 'backup_label').is_file(), \
            f'rsync clone wrote no backup_label\n{output(r)}'
        label = (n4.datadir / 'backup_label').read_text()
        start = re.search(r'START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)', label).group(1)
        copied = sorted(p.name for p in (n4.datadir / 'pg_wal').iterdir() if len(p.name) == 24)
        assert copied and copied[0] == start, f'WAL before the backup start {start} copied: {copied}'
        assert source_segments[0] < start, f'the test needs older segments on node1: {source_segments}'
        assert not (n4.datadir / 'postmaster.pid').exists(), 'postmaster.pid copied'
        assert_standby_files(n4.datadir, 'rsync clone node4')
        n4.start()
        assert n4.is_in_recovery()
        wait_streaming(n4)
        n1.psql('insert into walk values (4)', db='pgbench')
        wait_count(n4, 'select count(*) from walk', '2')
        assert n4.psql('select count(*) from pgbench_accounts', db='pgbench') == '100000'
        n4.stop()

        # ---- 8. Forced clone of a stopped standby after more writes: the same system,
        # so pg_rewind (which finds nothing diverged and leaves streaming to catch up).
        n2.stop()
        n1.psql('insert into walk select g from generate_series(100, 1099) g; '
                'update pgbench_accounts set abalance = abalance + 1 where aid <= 1000',
                db='pgbench')
        r = pgrm('--json', *clone_args(n2.datadir, n1, '--force'), check=0)
        doc = parse_json(r, 'forced standby clone --json')
        assert doc['ok'] is True, doc
        assert doc['data']['method'] == 'pg_rewind', doc
        assert doc['data']['delta'] is True, doc
        assert_standby_files(n2.datadir, 'forced clone node2')
        n2.start()
        assert n2.is_in_recovery()
        wait_count(n2, 'select count(*) from walk', '1002')
        wait_count(n2, 'select count(*) from pgbench_accounts where abalance = 1', '1000')
        wait_streaming(n2)
        n1.psql('insert into walk values (5)', db='pgbench')
        wait_count(n2, 'select count(*) from walk', '1003')
        wait_count(n3, 'select count(*) from walk', '1003')
        doc = show()
        nodes = {n['id']: n for n in doc['data']['nodes']}
        assert nodes[2]['streaming'] is True and nodes[2]['role_found'] == 'standby', nodes[2]

        # ---- 9. Forced clone over another database system's files: no pg_rewind
        # possible, so an rsync delta, and the warning says why.
        other = sb.new_instance('other')
        other.initdb()
        r = pgrm('--json', *clone_args(other.datadir, n1, '--force'), check=0)
        doc = parse_json(r, 'forced clone over another system --json')
        assert doc['data']['method'] == 'rsync' and doc['data']['delta'] is True, doc
        assert any('another database system' in w for w in doc['warnings']), doc
        assert_standby_files(other.datadir, 'forced clone over another system')
        other.start()
        assert other.is_in_recovery()
        wait_count(other, 'select count(*) from walk', '1003')


def test_register_back_to_back():
    """A script runs master register and, at once, standby register (issue 10, item 5):
    standby register waits until the standby has replayed its upstream's current WAL, so
    the metadata master register has just written is there. Several rounds, replay held
    back by recovery_min_apply_delay in some (then the race is lost every time without
    the wait) and free in others; each round starts from no metadata at all."""
    with harness.Sandbox() as sb:
        n1 = make_primary(sb, scale=None)
        n2 = sb.new_instance('node2')
        pgrm(*clone_args(n2.datadir, n1), check=0)
        n2.start()
        wait_streaming(n2)
        conf1 = write_conf(sb, 1, n1, data_directory=False)
        conf2 = write_conf(sb, 2, n2, data_directory=False)
        has_schema = "select count(*) from pg_namespace where nspname = 'repmgr_test'"
        for delay in ('1s', '0', '500ms', '0', '1s'):
            n2.psql(f"alter system set recovery_min_apply_delay = '{delay}'")
            n2.psql('select pg_reload_conf()')
            pgrm('-f', conf1, 'master', 'register', check=0)
            r = pgrm('-f', conf2, '--json', 'standby', 'register', check=0)
            doc = parse_json(r, f'standby register right after master register (delay {delay})')
            assert doc['data']['node']['upstream_node_id'] == 1, doc
            assert n1.psql('select id, type from repmgr_test.repl_nodes order by id',
                           db='pgbench') == '1|primary\n2|standby'
            # The next round starts with no metadata on either node.
            n1.psql('drop schema repmgr_test cascade', db='pgbench')
            wait_until(lambda: n2.psql(has_schema, db='pgbench') == '0', timeout=30,
                       what='node2 to replay the dropped schema')


# --------------------------------------------------------------------------------------
# Refusals needing their own setup


def test_clone_command_options_follow_the_command():
    """The seed's shared options go anywhere; a command's own options (--method,
    --dry-run) follow the command, and placed before it they are a clear error."""
    with harness.Sandbox() as sb:
        n1 = make_primary(sb)
        target = sb.path('before')
        r = pgrm(*clone_args(target, n1, after=['--method', 'rsync', '--dry-run']), check=0)
        assert 'rsync' in r.stdout, output(r)
        r = pgrm(*clone_args(target, n1, '--dry-run'), check=1)
        assert '"--dry-run"' in r.stderr, output(r)
        assert not target.exists(), 'a refused command line created the target'


def test_clone_help_shows_dry_run_as_a_flag():
    """--dry-run takes no value, so the command's help must not show one."""
    r = pgrm('standby', 'clone', '--help', check=0)
    lines = [l for l in r.stdout.splitlines() if '--dry-run' in l]
    assert lines, output(r)
    assert '--dry-run=' not in lines[0], f'help shows a value for a flag: {lines[0]!r}'
    assert '--method=' in r.stdout, output(r)


def test_clone_rsync_over_ssh_from_another_host():
    """The seed's way: rsync over ssh. pgrm runs in a network namespace (another host),
    the primary and an sshd of its own listen on this side of a veth pair; ssh_options
    from the config give ssh the port, key and known host. Without them ssh cannot log in
    (BatchMode: no prompt) and the clone fails with ERR_BAD_RSYNC (2), leaving no copy."""
    with harness.Sandbox() as sb:
        host = harness.NetNamespace(sb)
        n1 = make_primary(sb, extra_conf={'listen_addresses': f'127.0.0.1,{host.local}'})
        host.trust(n1)
        n1.psql('select pg_reload_conf()')
        n1.psql('create table walk(i int primary key); insert into walk values (1)', db='pgbench')
        sshd = harness.Sshd(sb, host.local)

        def clone(target: Path, conf: Path):
            return pgrm('-f', conf, '-D', target, '-d', 'pgbench', '-p', n1.port, '-U', 'postgres',
                        '-R', 'postgres', '--verbose', 'standby', 'clone', '--method', 'rsync',
                        host.local, netns=host)

        def conf(name: str, **settings) -> Path:
            return write_conf(sb, 2, n1, name=name, data_directory=False, **settings,
                              conninfo=f'host={host.remote} port={n1.port} user=postgres dbname=pgbench')

        # No key for ssh: refused at once, nothing copied.
        target = sb.path('node2')
        r = clone(target, conf('plain'))
        assert r.returncode == 2, output(r)
        assert 'rsync failed' in r.stderr, output(r)
        assert not target.exists() or not any(target.iterdir()), f'a failed clone left files in {target}'
        assert n1.psql("select count(*) from pg_stat_activity where backend_type = 'client backend' "
                       "and query ilike '%backup%' and pid <> pg_backend_pid()") == '0'

        # With ssh_options: copied over ssh, then a streaming standby with the data.
        r = clone(target, conf('repmgr2', ssh_options=sshd.ssh_options()))
        assert r.returncode == 0, output(r) + sshd.log()
        assert 'Accepted publickey for postgres' in sshd.log(), sshd.log()
        assert (target / 'backup_label').is_file(), output(r)
        auto = (target / 'postgresql.auto.conf').read_text()
        assert f'host={host.local}' in auto, auto
        n2 = sb.new_instance('node2')
        n2.start()
        wait_streaming(n2)
        n1.psql('insert into walk values (2)', db='pgbench')
        wait_count(n2, 'select count(*) from walk', '2')


def test_clone_wrong_or_missing_password():
    with harness.Sandbox() as sb:
        n1 = make_primary(sb, scale=None)
        n1.psql("CREATE ROLE pw LOGIN SUPERUSER PASSWORD 'right'")
        hba = n1.datadir / 'pg_hba.conf'
        hba.write_text('host all pw 127.0.0.1/32 scram-sha-256\n'
                       'host replication pw 127.0.0.1/32 scram-sha-256\n' + hba.read_text())
        n1.psql('select pg_reload_conf()')
        # psql agrees: the right password works, a wrong one does not.
        psql = [harness.pg_bin('psql'), '-X', '-A', '-t', '-h', '127.0.0.1', '-p', n1.port,
                '-U', 'pw', '-d', 'pgbench', '-c', 'select 1']
        wait_until(lambda: harness.run_as_pg(psql, env={'PGPASSWORD': 'right'}).stdout.strip() == '1',
                   what='psql with the right password')
        assert harness.run_as_pg(psql, env={'PGPASSWORD': 'wrong'}, check=False).returncode != 0

        target = sb.path('pwclone')
        args = ['-D', target, '-d', 'pgbench', '-p', n1.port, '-U', 'pw', '-R', 'postgres',
                '--verbose', 'standby', 'clone', '127.0.0.1']
        r = pgrm(*args, env={'PGPASSWORD': 'wrong'}, check=9)
        assert 'wrong' not in r.stdout + r.stderr, f'password leaked\n{output(r)}'
        assert 'password authentication failed' in r.stderr, output(r)
        assert not target.exists(), 'refused clone created its target'
        r = pgrm('--json', *args, env={'PGPASSWORD': 'wrong'}, check=9)
        assert 'wrong' not in r.stdout + r.stderr, f'password leaked\n{output(r)}'
        doc = parse_json(r, 'clone --json with a wrong password')
        assert doc['ok'] is False and doc['error']['code'] == 9, doc

        # No password at all (and no ~/.pgpass to find one in).
        r = pgrm(*args, env={'PGPASSFILE': str(sb.path('no-such-pgpass'))}, check=9)
        assert 'no password supplied' in r.stderr, output(r)
        assert not target.exists()

        # The right password, from the environment, is enough for the whole clone
        # (pg_basebackup included) and is not written into the standby's settings.
        r = pgrm(*args, env={'PGPASSWORD': 'right'}, check=0)
        assert not re.search(r'\bright\b', r.stdout + r.stderr), f'password shown\n{output(r)}'
        assert_standby_files(target, 'clone with a password')
        assert 'right' not in (target / 'postgresql.auto.conf').read_text()


def test_clone_from_closed_port():
    with harness.Sandbox() as sb:
        port = harness.free_port()
        target = sb.path('closed')
        r = pgrm('-D', target, '-d', 'pgbench', '-p', port, '-U', 'postgres', '-R', 'postgres',
                 '--verbose', 'standby', 'clone', '127.0.0.1', check=6)
        assert str(port) in r.stdout + r.stderr, output(r)
        assert not target.exists(), 'refused clone created its target'
        r = pgrm('--json', '-D', target, '-p', port, 'standby', 'clone', '127.0.0.1', check=6)
        doc = parse_json(r, 'clone --json from a closed port')
        assert doc['ok'] is False and doc['error']['code'] == 6, doc


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
