#!/usr/bin/env python3
"""End to end: bringing a failed primary back as a standby keeps the node's own
configuration files (its port, its pg_hba.conf lines), whether the forced `standby clone`
rewinds it with pg_rewind or copies an rsync delta; each rejoined server is then started
on its own configuration alone (no -p/-k on the command line) and must replay a write.

pgrm runs as root (harness.pgrm's default), through the `repmgr` persona symlink.
"""

import sys
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
    return [l for l in text.splitlines() if not l.strip().startswith('primary_conninfo')]


def assert_config_kept(inst: harness.Instance, before: dict, primary: harness.Instance):
    """inst's configuration files are the ones it had before, but for primary_conninfo,
    which names primary, once."""
    after = config_files(inst)
    for name in ('postgresql.conf', 'pg_hba.conf', 'pg_ident.conf'):
        assert after[name] == before[name], f'{inst.name}: {name} changed:\n{after[name]}'
    auto = after['postgresql.auto.conf']
    assert without_primary_conninfo(auto) == without_primary_conninfo(before['postgresql.auto.conf']), \
        f'{inst.name}: postgresql.auto.conf changed beyond primary_conninfo:\n{auto}'
    lines = [l for l in auto.splitlines() if l.strip().startswith('primary_conninfo')]
    assert len(lines) == 1 and f'port={primary.port}' in lines[0], \
        f'{inst.name}: primary_conninfo should name port {primary.port}:\n{auto}'
    assert (inst.datadir / 'standby.signal').is_file(), f'{inst.name}: no standby.signal'


def assert_runs_on_own_config(inst: harness.Instance, primary: harness.Instance):
    """inst, started on its own configuration files alone, is a standby on its own port
    with its own pg_hba.conf line, streaming from primary and replaying a new write."""
    inst.start(overrides=False)
    assert inst.psql('show port') == str(inst.port)
    assert inst.psql('show cluster_name') == f'own-{inst.name}'
    rules = inst.psql("select count(*) from pg_hba_file_rules "
                      f"where address = '{hba_address(inst)}' and error is null")
    assert rules == '1', f'{inst.name}: its own pg_hba.conf line is not in effect'
    assert inst.is_in_recovery(), f'{inst.name} came back writable'
    wait_streaming_from(inst, primary)
    primary.psql('insert into walk values (1000)', db='pgbench')
    wait_until(lambda: inst.psql('select count(*) from walk where i = 1000', db='pgbench') == '1',
               what=f'{inst.name} to replay a write made on {primary.name}')


def failed_over(sb: harness.Sandbox, crash: bool):
    """node1 primary and node2 its standby, both registered, each with configuration of
    its own (node2's port in postgresql.auto.conf, as `pgrm demo` sets it); then node1
    stops (crash: killed -9) and node2 is promoted by `standby promote`. Returns node1,
    node2 and their repmgr.conf files."""
    n1 = make_primary(sb, scale=None)
    n1.psql('create table walk(i int primary key)', db='pgbench')
    own_config(n1, in_auto_conf=False)
    n1.restart()
    conf1 = write_conf(sb, 1, n1)
    pgrm('-f', conf1, 'master', 'register', check=0)
    n2 = sb.new_instance('node2')
    pgrm(*clone_args(n2.datadir, n1), check=0)
    own_config(n2, in_auto_conf=True)
    n2.start()
    wait_streaming_from(n2, n1)
    conf2 = write_conf(sb, 2, n2)
    pgrm('-f', conf2, 'standby', 'register', check=0)
    n1.psql('insert into walk values (1)', db='pgbench')
    wait_until(lambda: n2.psql('select count(*) from walk', db='pgbench') == '1',
               what='node2 to replay the first row')
    if crash:
        n1.kill9()
    else:
        n1.stop('fast')
    pgrm('-f', conf2, 'standby', 'promote', check=0)
    n2.psql('insert into walk values (2)', db='pgbench')
    return n1, n2, conf1, conf2


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
