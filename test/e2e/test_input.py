#!/usr/bin/env python3
"""End to end: hostile or unusual input on real servers never ends the program, and
gives one clear error (or the right result) instead.

  1. a LATIN1 database: text arrives as UTF-8 (client_encoding), so names and events
     written by other clients come out right, and --json stays one valid document;
  2. control characters in a node's name are escaped in cluster show's table, so they
     cannot forge rows;
  3. a running repmgrd whose config is broken (a TOML typo that toml++ asserted on, a
     non-ASCII character it classified with undefined behaviour) keeps its config on
     SIGHUP, logs why, and runs on.
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import Daemon, log_of, output, parse_json, pgrm, wait_until  # noqa: E402


def test_latin1_database():
    with harness.Sandbox() as sb:
        inst = harness.make_primary(sb, scale=None)
        harness.run_as_pg([harness.pg_bin('createdb'), '-h', '127.0.0.1', '-p', str(inst.port),
                           '-E', 'LATIN1', '-T', 'template0', '--locale=C', 'latin1'])
        conf = harness.write_conf(sb, 1, inst, node_name='caf\u00e9',
                                  conninfo=f'host=127.0.0.1 port={inst.port} user=postgres dbname=latin1')

        r = pgrm('-f', conf, 'master', 'register', '--json', check=0)
        doc = parse_json(r, 'master register --json')
        assert doc['data']['node']['name'] == 'caf\u00e9', output(r)
        # Stored as the database's own é (0xe9), not as the two bytes of its UTF-8 form.
        assert inst.psql("select encode(convert_to(name, 'LATIN1'), 'hex') from repmgr_test.repl_nodes",
                         db='latin1') == '636166e9'

        # Text another client wrote in LATIN1 comes out as UTF-8, in text and in JSON.
        inst.psql("insert into repmgr_test.events (node_id, event, successful, details) "
                  "values (1, 'manual_note', true, convert_from('\\x6e6f74e9'::bytea, 'LATIN1'))",
                  db='latin1')
        r = pgrm('-f', conf, 'cluster', 'event', '--event', 'manual_note', '--json', check=0)
        events = parse_json(r, 'cluster event --json')['data']['events']
        assert [e['details'] for e in events] == ['not\u00e9'], output(r)
        r = pgrm('-f', conf, 'cluster', 'event', '--event', 'manual_note', check=0)
        assert 'not\u00e9' in r.stdout, output(r)
        r = pgrm('-f', conf, 'cluster', 'show', '--json', check=0)
        assert [n['name'] for n in parse_json(r, 'cluster show --json')['data']['nodes']] == ['caf\u00e9']


def test_control_characters_in_a_name_cannot_forge_rows():
    with harness.Sandbox() as sb:
        inst = harness.make_primary(sb, scale=None)
        conf = harness.write_conf(sb, 1, inst)
        pgrm('-f', conf, 'master', 'register', check=0)
        # A name written into the metadata by some other client.
        inst.psql("update repmgr_test.repl_nodes set name = E'n1\\n2  | forged   | standby\\r\\x1b[2J'",
                  db='pgbench')
        r = pgrm('-f', conf, 'cluster', 'show', check=0)
        rows = r.stdout.splitlines()
        assert len([line for line in rows if '|' in line]) == 2, output(r)   # the header and node 1
        assert 'n1\\n2  | forged   | standby\\r\\x1b[2J' in rows[2], output(r)
        # JSON has the name as it is.
        r = pgrm('-f', conf, 'cluster', 'show', '--json', check=0)
        assert parse_json(r, 'cluster show --json')['data']['nodes'][0]['name'] == \
            'n1\n2  | forged   | standby\r\x1b[2J'


def test_daemon_keeps_its_config_when_a_reload_fails():
    with harness.Sandbox() as sb:
        inst = harness.make_primary(sb, scale=None)
        log = sb.path('repmgrd1.log')
        # TOML, with 'literal' strings: a [table] or a stray character then stays TOML.
        good = (f"cluster='test'\nnode=1\nconninfo='host=127.0.0.1 port={inst.port} user=postgres "
                f"dbname=pgbench'\ndata_directory='{inst.datadir}'\nlog_file='{log}'\n"
                "monitor_interval_secs=1\n")
        conf = sb.path('repmgr1.toml')
        conf.write_text(good)
        assert log_of(conf) == log
        pgrm('-f', conf, 'master', 'register', check=0)
        d = Daemon(sb, 'node1', conf)
        reloads_refused = lambda: [line for line in log.read_text(errors='replace').splitlines()  # noqa: E731
                                   if 'configuration not reloaded' in line]
        try:
            d.wait_log('repmgrd started')
            for broken, reason in ((b'[=\n', 'error while parsing key'),
                                   (good.encode() + b'failover=\xc3\xa9\n',
                                    'a non-ASCII character outside a quoted string or a comment')):
                before = len(reloads_refused())
                conf.write_bytes(broken)
                os.kill(d.pid, signal.SIGHUP)
                wait_until(lambda: len(reloads_refused()) > before or not d.running(),
                           timeout=10, what='the failed reload to be logged')
                assert d.running(), f'repmgrd ended on SIGHUP with {broken!r}:\n{log.read_text()}'
                assert reason in reloads_refused()[-1], reloads_refused()[-1]
                conf.write_text(good)  # d.log_text() reads the log file's name from it
            # Mended, it reloads.
            os.kill(d.pid, signal.SIGHUP)
            d.wait_log('configuration reloaded', timeout=10)
            assert d.running(), d.tail()
        finally:
            rc = d.stop()
        assert rc == 0, f'exit code {rc}{d.tail()}'


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
