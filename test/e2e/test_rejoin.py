#!/usr/bin/env python3
"""End to end: `node rejoin`, and the forced `standby clone` it shares core/rejoin with.

A failed primary (stopped, fenced, or killed -9) comes back as a standby of the promoted
one right after the promotion (by `standby promote`, or by three repmgrd failing over on
their own); so does a standby killed -9. Each keeps its own configuration files (its
port, its pg_hba.conf lines; repmgrd's fence is lifted), whether rewound with pg_rewind
or copied by an rsync delta (no wal_log_hints), and runs on them alone (no -p/-k on the
command line): `node rejoin` starts it itself, and it must stream from the primary and
replay a write made there. `--dry-run` and the refusals (a running server; a writable
node never recorded as the primary, after a bounded wait) change nothing.

pgrm runs as root (harness.pgrm's default), through the `repmgr` persona symlink.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (clone_args, make_primary, output, parse_json, pgrm,  # noqa: E402
                     wait_streaming_from, wait_until, write_conf)

CONFIG_FILES = ('postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf', 'pg_ident.conf')


# --------------------------------------------------------------------------------------
# Helpers


def own_config(inst: harness.Instance, in_auto_conf: bool):
    """Gives inst configuration of its own, as an administrator would: its port and
    socket directory (in postgresql.auto.conf when in_auto_conf, where `pgrm demo` puts a
    clone's port, else postgresql.conf), its cluster_name in postgresql.auto.conf, and a
    pg_hba.conf and a pg_ident.conf line naming it."""
    where = 'postgresql.auto.conf' if in_auto_conf else 'postgresql.conf'
    with open(inst.datadir / where, 'a') as f:
        f.write(f"port = {inst.port}\nunix_socket_directories = '{inst.socket_dir}'\n")
    with open(inst.datadir / 'postgresql.auto.conf', 'a') as f:
        f.write(f"cluster_name = 'own-{inst.name}'\n")
    with open(inst.datadir / 'pg_hba.conf', 'a') as f:
        f.write(f'host all all {hba_address(inst)}/32 trust\n')
    with open(inst.datadir / 'pg_ident.conf', 'a') as f:
        f.write(f'pgrm {inst.name} postgres\n')


def hba_address(inst: harness.Instance) -> str:
    """A documentation address (RFC 5737) that only inst's pg_hba.conf names."""
    return f'192.0.2.{sum(map(ord, inst.name)) % 250 + 1}'


def config_files(inst: harness.Instance) -> dict:
    return {name: (inst.datadir / name).read_text() for name in CONFIG_FILES}


def without_primary_conninfo(text: str) -> list:
    """The lines a rejoin keeps: all but primary_conninfo and repmgrd's fence."""
    return [l for l in text.splitlines()
            if not l.strip().startswith(('primary_conninfo', 'default_transaction_read_only'))]


def assert_config_kept(inst: harness.Instance, before: dict, primary: harness.Instance):
    """inst's configuration files are the ones it had before, but for primary_conninfo,
    which names primary, once, and no fence."""
    after = config_files(inst)
    for name in ('postgresql.conf', 'pg_hba.conf', 'pg_ident.conf'):
        assert after[name] == before[name], f'{inst.name}: {name} changed:\n{after[name]}'
    auto = after['postgresql.auto.conf']
    assert without_primary_conninfo(auto) == without_primary_conninfo(before['postgresql.auto.conf']), \
        f'{inst.name}: postgresql.auto.conf changed beyond primary_conninfo:\n{auto}'
    lines = [l for l in auto.splitlines() if l.strip().startswith('primary_conninfo')]
    assert len(lines) == 1 and f'port={primary.port}' in lines[0], \
        f'{inst.name}: primary_conninfo should name port {primary.port}:\n{auto}'
    assert 'default_transaction_read_only' not in auto, f'{inst.name}: still fenced:\n{auto}'
    assert (inst.datadir / 'standby.signal').is_file(), f'{inst.name}: no standby.signal'


def assert_runs_on_own_config(inst: harness.Instance, primary: harness.Instance):
    """inst, started on its own configuration files alone, is a standby on its own port
    with its own pg_hba.conf line, streaming from primary and replaying a new write."""
    inst.start(overrides=False)
    assert_standby_on_own_config(inst, primary)


def assert_standby_on_own_config(inst: harness.Instance, primary: harness.Instance):
    """inst runs as a standby on its own port with its own pg_hba.conf line, unfenced,
    streaming from primary and replaying a new write."""
    assert inst.psql('show port') == str(inst.port)
    assert inst.psql('show default_transaction_read_only') == 'off', f'{inst.name} is still fenced'
    assert inst.psql('show cluster_name') == f'own-{inst.name}'
    rules = inst.psql("select count(*) from pg_hba_file_rules "
                      f"where address = '{hba_address(inst)}' and error is null")
    assert rules == '1', f'{inst.name}: its own pg_hba.conf line is not in effect'
    assert inst.is_in_recovery(), f'{inst.name} came back writable'
    wait_streaming_from(inst, primary)
    row = int(primary.psql('select coalesce(max(i), 0) + 1 from walk', db='pgbench'))
    primary.psql(f'insert into walk values ({row})', db='pgbench')
    wait_until(lambda: inst.psql(f'select count(*) from walk where i = {row}', db='pgbench') == '1',
               what=f'{inst.name} to replay a write made on {primary.name}')


def registered_standby(sb: harness.Sandbox, node_id: int, primary: harness.Instance):
    """node<node_id> cloned from primary, with its port in postgresql.auto.conf (as `pgrm
    demo` sets it), streaming and registered. Returns it and its repmgr.conf file."""
    inst = sb.new_instance(f'node{node_id}')
    pgrm(*clone_args(inst.datadir, primary), check=0)
    own_config(inst, in_auto_conf=True)
    inst.start()
    wait_streaming_from(inst, primary)
    conf = write_conf(sb, node_id, inst)
    pgrm('-f', conf, 'standby', 'register', check=0)
    return inst, conf


def registered_pair(sb: harness.Sandbox, extra_conf: dict | None = None):
    """node1 primary (initdb'd with extra_conf) and node2 its standby, both registered,
    each with configuration of its own (node2's port in postgresql.auto.conf, as
    `pgrm demo` sets it), and one row in walk replayed on node2. Returns node1, node2 and
    their repmgr.conf files."""
    n1 = make_primary(sb, scale=None, extra_conf=extra_conf)
    n1.psql('create table walk(i int primary key)', db='pgbench')
    own_config(n1, in_auto_conf=False)
    n1.restart()
    conf1 = write_conf(sb, 1, n1)
    pgrm('-f', conf1, 'master', 'register', check=0)
    n2, conf2 = registered_standby(sb, 2, n1)
    n1.psql('insert into walk values (1)', db='pgbench')
    wait_until(lambda: n2.psql('select count(*) from walk', db='pgbench') == '1',
               what='node2 to replay the first row')
    return n1, n2, conf1, conf2


def failed_over(sb: harness.Sandbox, crash: bool, fenced: bool = False, extra_conf: dict | None = None):
    """registered_pair(extra_conf), then node1 (fenced: made read-only as repmgrd fences)
    stops (crash: killed -9) and node2 is promoted by `standby promote`, and takes a
    write. Returns what registered_pair() does."""
    n1, n2, conf1, conf2 = registered_pair(sb, extra_conf)
    if fenced:
        n1.psql('alter system set default_transaction_read_only = on')
        n1.psql('select pg_reload_conf()')
    if crash:
        n1.kill9()
    else:
        n1.stop('fast')
    pgrm('-f', conf2, 'standby', 'promote', check=0)
    n2.psql('insert into walk values (2)', db='pgbench')
    return n1, n2, conf1, conf2


def rejoin_args(conf: Path, entry: harness.Instance, *after) -> list:
    """node rejoin with conf, asking entry (any running node) for the cluster's state."""
    return ['-f', conf, '--json', 'node', 'rejoin', *after, '-h', '127.0.0.1', '-p', entry.port]


def timed(what: str, fn):
    t0 = time.monotonic()
    result = fn()
    print(f'# timing: {what}: {time.monotonic() - t0:.2f} s', flush=True)
    return result


def metadata(primary: harness.Instance) -> str:
    return primary.psql('select id, type, active, upstream_node_id from repmgr_test.repl_nodes order by id; '
                        'select count(*) from repmgr_test.events', db='pgbench')


def tree(inst: harness.Instance) -> dict:
    """Relative path -> (size, mtime_ns, mode) of everything in inst's data directory."""
    out = {}
    for root, dirs, files in os.walk(inst.datadir):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            out[str(p.relative_to(inst.datadir))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def assert_rejoined(inst: harness.Instance, conf: Path, primary: harness.Instance, primary_id: int,
                    doc: dict, before: dict):
    """After node rejoin: its own configuration, running as a standby of primary (started by
    pgrm) and replaying, shown so by cluster show, with a node_rejoin event."""
    assert doc['ok'] is True and doc['data']['primary_node_id'] == primary_id, doc
    assert 'rewind_error' not in doc['data'], doc
    assert doc['data']['replayed_lsn'], doc
    assert_config_kept(inst, before, primary)
    assert inst.is_running(), f'{inst.name} was not started'
    assert_standby_on_own_config(inst, primary)
    show = parse_json(pgrm('-f', conf, '--json', 'cluster', 'show', check=0), 'cluster show --json')
    me = next(n for n in show['data']['nodes'] if n['name'] == inst.name)
    assert me['type'] == 'standby' and me['upstream_node_id'] == primary_id, me
    assert me['role_found'] == 'standby' and me['streaming'] is True, me
    events = primary.psql("select successful from repmgr_test.events where event = 'node_rejoin'", db='pgbench')
    assert events == 't', f'node_rejoin events: {events!r}'


# --------------------------------------------------------------------------------------
# node rejoin


def test_rejoin_crashed_primary_right_after_promote():
    """node1 fenced by repmgrd (default_transaction_read_only, as make_read_only sets it),
    then killed -9; node2 promoted, and at once node1 rejoins: pg_rewind (after its own
    single-user crash recovery, and a checkpoint on node2 so that it sees timeline 2) with
    node1's own port and pg_hba.conf, started by pgrm on them, and the fence lifted (kept,
    a later promotion of node1 would give a read-only primary)."""
    with harness.Sandbox() as sb:
        n1, n2, conf1, _ = failed_over(sb, crash=True, fenced=True)
        before = config_files(n1)
        r = timed('node rejoin right after promote (crashed node1)',
                  lambda: pgrm(*rejoin_args(conf1, n2), check=0))
        doc = parse_json(r, 'node rejoin --json')
        assert doc['data']['method'] == 'pg_rewind', doc
        assert any('single-user' in s for s in doc['data']['steps']), doc
        assert_rejoined(n1, conf1, n2, 2, doc, before)
        assert n1.psql('select count(*) from walk where i = 2', db='pgbench') == '1'


def test_rejoin_right_after_automatic_failover():
    """node1 killed -9 under three repmgrd with failover=automatic: the moment node2 or
    node3 accepts writes (its promotion may not have recorded itself yet), node1 rejoins
    it, its own daemon still running."""
    with harness.Sandbox() as sb, harness.daemon_cluster(sb) as c:
        harness.setup_three(c)
        n1, conf1 = c.nodes[1], c.confs[1]
        n1.psql('create table walk(i int primary key)', db='pgbench')
        own_config(n1, in_auto_conf=False)
        before = config_files(n1)
        n1.kill9()
        new_id = wait_until(lambda: harness.one_promoted(c), timeout=60, interval=0.05,
                            what='node2 or node3 to accept writes')
        new = c.nodes[new_id]
        r = timed('node rejoin right after automatic failover (crashed node1)',
                  lambda: pgrm(*rejoin_args(conf1, new), check=0))
        doc = parse_json(r, 'node rejoin --json')
        assert doc['data']['method'] == 'pg_rewind', doc
        assert_rejoined(n1, conf1, new, new_id, doc, before)
        assert c.daemons[1].running(), c.daemons[1].tail()


def test_rejoin_passes_over_a_fenced_primary_that_still_runs():
    """node1 fenced (read-only by its configuration, as repmgrd fences) and still running,
    node2 promoted past it with --force, node3 (a standby of node1, stopped before the
    promotion) rejoins: it follows node2, the one node that takes writes, and says node1
    needs a rejoin too; a fenced primary is no second writable node."""
    with harness.Sandbox() as sb:
        n1, n2, _, conf2 = registered_pair(sb)
        n3, conf3 = registered_standby(sb, 3, n1)
        n3.stop('fast')
        n1.psql('alter system set default_transaction_read_only = on')
        n1.psql('select pg_reload_conf()')
        pgrm('-f', conf2, 'standby', 'promote', '--force', check=0)
        n2.psql('insert into walk values (2)', db='pgbench')
        before = config_files(n3)
        r = pgrm(*rejoin_args(conf3, n2), check=0)
        doc = parse_json(r, 'node rejoin --json')
        assert_rejoined(n3, conf3, n2, 2, doc, before)
        assert 'node 1 ("node1") is a fenced former primary and still runs' in r.stderr, output(r)
        assert n1.is_running() and n1.psql('select pg_is_in_recovery()') == 'f'


def test_rejoin_dry_run_then_stopped_primary():
    """node1 stopped cleanly, node2 promoted: without a node to ask, and with --dry-run,
    nothing changes; then the rejoin itself."""
    with harness.Sandbox() as sb:
        n1, n2, conf1, _ = failed_over(sb, crash=False)
        files, meta = tree(n1), metadata(n2)

        r = pgrm('-f', conf1, 'node', 'rejoin', check=1)
        assert 'no running node named' in r.stderr, output(r)
        r = pgrm(*rejoin_args(conf1, n2, '--dry-run'), check=0)
        doc = parse_json(r, 'node rejoin --dry-run --json')
        assert doc['data']['dry_run'] is True and doc['data']['method'] == 'pg_rewind', doc
        assert 'wal_log_hints' in doc['data']['why'], doc
        assert doc['data']['primary_node_id'] == 2, doc
        r = pgrm('-f', conf1, 'node', 'rejoin', '--dry-run', '-h', '127.0.0.1', '-p', n2.port, check=0)
        assert '1. checkpoint the source' in r.stdout and 'with pg_rewind' in r.stdout, output(r)
        assert not n1.is_running(), 'a dry run started node1'
        assert tree(n1) == files, 'a dry run changed node1\'s data directory'
        assert metadata(n2) == meta, 'a dry run changed the metadata'

        before = config_files(n1)
        r = timed('node rejoin (node1 stopped cleanly)', lambda: pgrm(*rejoin_args(conf1, n2), check=0))
        assert_rejoined(n1, conf1, n2, 2, parse_json(r, 'node rejoin --json'), before)


def test_rejoin_by_rsync_without_wal_log_hints():
    """Without wal_log_hints or checksums pg_rewind cannot run: the crashed node1 is
    brought in line by an rsync delta under a backup on node2, keeping its own
    configuration, and --dry-run says so and why."""
    with harness.Sandbox() as sb:
        n1, n2, conf1, _ = failed_over(sb, crash=True, extra_conf={'wal_log_hints': 'off'})
        r = pgrm(*rejoin_args(conf1, n2, '--dry-run'), check=0)
        doc = parse_json(r, 'node rejoin --dry-run --json')
        assert doc['data']['method'] == 'rsync', doc
        assert doc['data']['why'] == 'the target has neither wal_log_hints nor data checksums', doc
        before = config_files(n1)
        r = timed('node rejoin by rsync (crashed node1, no wal_log_hints)',
                  lambda: pgrm(*rejoin_args(conf1, n2), check=0))
        doc = parse_json(r, 'node rejoin --json')
        assert doc['data']['method'] == 'rsync', doc
        assert_rejoined(n1, conf1, n2, 2, doc, before)
        assert n1.psql('select count(*) from walk where i = 2', db='pgbench') == '1'


def test_rejoin_crashed_standby():
    """A standby killed -9 cannot be recovered in single-user mode (no standby mode
    there), and recovering it as a primary would write WAL its primary never wrote: it is
    started and stopped once as a standby, then rewound. The primary names a synchronous
    standby that never connects (the nodes still to rejoin, as the chaos suite's
    operator meets them): the rejoin's record there does not wait for it."""
    with harness.Sandbox() as sb:
        n1, n2, _, conf2 = registered_pair(sb)
        n2.kill9()
        n1.psql('insert into walk values (2)', db='pgbench')
        n1.psql("alter system set synchronous_standby_names = 'ANY 1 (nobody)'")
        n1.psql('select pg_reload_conf()')
        before = config_files(n2)
        r = timed('node rejoin (crashed standby)', lambda: pgrm(*rejoin_args(conf2, n1), check=0, timeout=120))
        n1.psql('alter system reset synchronous_standby_names')   # the checks below write there
        n1.psql('select pg_reload_conf()')
        doc = parse_json(r, 'node rejoin --json')
        assert doc['data']['method'] == 'pg_rewind', doc
        assert any('start it once as a standby' in s for s in doc['data']['steps']), doc
        assert_rejoined(n2, conf2, n1, 1, doc, before)


def pair_on_command_line_options(sb: harness.Sandbox):
    """node1 primary and node2 its standby, both registered; node2's port and socket
    directory come from its command line, as pg_ctlcluster gives config_file, while its
    postgresql.conf is its primary's copy (node1's port)."""
    n1 = make_primary(sb, scale=None)
    n1.psql('create table walk(i int primary key)', db='pgbench')
    conf1 = write_conf(sb, 1, n1)
    pgrm('-f', conf1, 'master', 'register', check=0)
    n2 = sb.new_instance('node2')
    pgrm(*clone_args(n2.datadir, n1), check=0)
    n2.start()
    wait_streaming_from(n2, n1)
    conf2 = write_conf(sb, 2, n2)
    pgrm('-f', conf2, 'standby', 'register', check=0)
    assert n2.psql("select source from pg_settings where name = 'port'") == 'command line'
    return n1, n2, conf1, conf2


def assert_on_own_command_line(n2: harness.Instance, n1: harness.Instance, rows: int):
    assert n2.psql('show port') == str(n2.port)
    assert n2.psql("select source from pg_settings where name = 'port'") == 'command line'
    assert n2.is_in_recovery()
    wait_streaming_from(n2, n1)
    wait_until(lambda: n2.psql('select count(*) from walk', db='pgbench') == str(rows),
               what='node2 to replay the rows written on node1')


def test_rejoin_starts_the_server_with_its_command_line_options():
    """node rejoin starts a node (once to recover, then as a standby) with the options it
    last ran with, as pg_ctl restart would, so it comes up on its own port and not its
    primary's."""
    with harness.Sandbox() as sb:
        n1, n2, _, conf2 = pair_on_command_line_options(sb)
        n2.kill9()
        n1.psql('insert into walk values (1)', db='pgbench')
        r = pgrm(*rejoin_args(conf2, n1), check=0)
        assert parse_json(r, 'node rejoin --json')['ok'] is True
        assert_on_own_command_line(n2, n1, 1)


def test_rejoin_by_pg_rewind_keeps_the_command_line_options():
    """The same node promoted on its own (outside pgrm: the metadata still names node1),
    written to and killed -9: pg_rewind (PostgreSQL 14 and later) deletes postmaster.opts,
    which holds those options, so the rejoin keeps it across the rewind, as it keeps the
    configuration files; else node2 would start on node1's port and fail (found by
    bench/soak.py, its second failover)."""
    with harness.Sandbox() as sb:
        n1, n2, _, conf2 = pair_on_command_line_options(sb)
        n2.psql('select pg_promote()')
        wait_until(lambda: not n2.is_in_recovery(), what='node2 to be promoted')
        n2.psql('insert into walk values (-1)', db='pgbench')
        n2.kill9()
        n1.psql('insert into walk values (1)', db='pgbench')
        r = pgrm(*rejoin_args(conf2, n1), check=0)
        doc = parse_json(r, 'node rejoin --json')
        assert doc['data']['method'] == 'pg_rewind', doc
        assert_on_own_command_line(n2, n1, 1)


def test_rejoin_waits_for_the_promotion_to_be_recorded():
    """node2 promoted outside pgrm: it accepts writes, but its metadata does not say so.
    node rejoin asks again for a bounded while (a promotion records itself a moment after
    the server leaves recovery), then refuses and changes nothing; once the metadata
    names node2 the primary, the rejoin goes through."""
    with harness.Sandbox() as sb:
        n1, n2, conf1, _ = registered_pair(sb)
        n1.stop('fast')
        harness.run_as_pg([harness.pg_bin('pg_ctl'), '-D', n2.datadir, '-w', 'promote'])
        files, meta = tree(n1), metadata(n2)
        t0 = time.monotonic()
        r = pgrm(*rejoin_args(conf1, n2), check=1)
        waited = time.monotonic() - t0
        doc = parse_json(r, 'refused node rejoin --json')
        assert doc['error']['message'] == 'node 2 ("node2") accepts writes but is not registered as the primary', doc
        assert waited >= 9, f'refused after {waited:.1f} s, without waiting for the promotion to be recorded'
        assert not n1.is_running() and tree(n1) == files, 'the refusal touched node1'
        assert metadata(n2) == meta, 'the refusal changed the metadata'

        n2.psql("update repmgr_test.repl_nodes set type = 'primary', active = true, upstream_node_id = null "
                "where id = 2; update repmgr_test.repl_nodes set active = false where id = 1", db='pgbench')
        before = config_files(n1)
        r = pgrm(*rejoin_args(conf1, n2), check=0)
        assert_rejoined(n1, conf1, n2, 2, parse_json(r, 'node rejoin --json'), before)


def test_rejoin_refuses_a_running_server():
    """A running server is never rewound: refused, exit 1, and nothing changes."""
    with harness.Sandbox() as sb:
        n1, n2, _, conf2 = registered_pair(sb)
        before, meta = config_files(n2), metadata(n1)
        pid = n2.pid()
        r = pgrm(*rejoin_args(conf2, n1), check=1)
        doc = parse_json(r, 'refused node rejoin --json')
        assert doc['ok'] is False and 'is running' in doc['error']['message'], doc
        assert 'pg_ctl' in doc['error']['hint'], doc
        r = pgrm('-f', conf2, 'node', 'rejoin', '-h', '127.0.0.1', '-p', n1.port, check=1)
        assert r.stderr.startswith('ERROR: the server of node 2 is running'), output(r)
        assert n2.pid() == pid and n2.is_in_recovery(), 'the refusal touched node2'
        wait_streaming_from(n2, n1)
        assert config_files(n2) == before, 'the refusal changed node2\'s configuration'
        assert metadata(n1) == meta, 'the refusal changed the metadata'


# --------------------------------------------------------------------------------------
# Forced standby clone


def test_forced_clone_keeps_the_targets_configuration():
    """pg_rewind copies every configuration file of the source; the forced clone puts the
    target's own back. Before, node1 came back with node2's port and did not start."""
    with harness.Sandbox() as sb:
        n1, n2, conf1, _ = failed_over(sb, crash=True)
        before = config_files(n1)
        r = pgrm('--json', *clone_args(n1.datadir, n2, '--force', '-f', conf1), check=0)
        doc = parse_json(r, 'forced standby clone --json')
        assert doc['data']['method'] == 'pg_rewind', doc
        assert any('keep the target\'s own configuration files' in s for s in doc['data']['steps']), doc
        assert_config_kept(n1, before, n2)
        assert_runs_on_own_config(n1, n2)


def test_forced_clone_by_rsync_keeps_the_targets_configuration():
    """The rsync delta (here over another database system's files, so no pg_rewind)
    leaves the target's configuration files out of the copy."""
    with harness.Sandbox() as sb:
        n1 = make_primary(sb, scale=None)
        n1.psql('create table walk(i int primary key)', db='pgbench')
        other = sb.new_instance('other')
        other.initdb()
        own_config(other, in_auto_conf=False)
        before = config_files(other)
        r = pgrm('--json', *clone_args(other.datadir, n1, '--force'), check=0)
        doc = parse_json(r, 'forced clone over another system --json')
        assert doc['data']['method'] == 'rsync' and doc['data']['delta'] is True, output(r)
        assert_config_kept(other, before, n1)
        assert_runs_on_own_config(other, n1)


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
