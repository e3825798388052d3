#!/usr/bin/env python3
"""Proves the e2e harness itself: instances start on their own ports, answer queries,
stop, crash, and leave nothing behind."""

import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def _no_process_under(root: Path) -> bool:
    return not harness._processes_under(root)


def test_pg_bindir_detected():
    assert harness.PG_BINDIR is not None
    assert (harness.PG_BINDIR / 'pg_ctl').is_file(), harness.PG_BINDIR


def test_free_port_below_ephemeral_range():
    ports = {harness.free_port() for _ in range(20)}
    assert len(ports) == 20, ports
    assert all(20000 <= p < 32768 for p in ports), ports


def test_two_instances_start_query_stop():
    with harness.Sandbox() as sb:
        root = sb.root
        assert oct(root.stat().st_mode & 0o777) == oct(0o755)
        a = sb.new_instance('node1')
        b = sb.new_instance('node2')
        assert a.port != b.port
        assert not a.datadir.exists(), 'new_instance must not create the data directory'
        a.initdb()
        b.initdb({'max_connections': 30})
        a.start()
        b.start()
        assert a.is_running() and b.is_running()
        assert a.psql('select 1') == '1'
        assert b.psql('select 1') == '1'
        # Each on its own port, with the settings the harness promises.
        assert a.psql('show port') == str(a.port)
        assert b.psql('show port') == str(b.port)
        assert a.psql('show wal_level') == 'replica'
        assert a.psql('show wal_log_hints') == 'on'
        assert a.psql('show fsync') == 'on'
        assert a.psql('show listen_addresses') == '127.0.0.1'
        assert a.psql('show unix_socket_directories') == str(a.socket_dir)
        assert b.psql('show max_connections') == '30'
        assert a.psql('select current_user') == harness.PG_USER
        # Server processes run as the postgres OS user when we are root.
        if os.geteuid() == 0:
            assert a.datadir.stat().st_uid == harness._PG_PW.pw_uid
            assert Path(f'/proc/{a.pid()}').stat().st_uid == harness._PG_PW.pw_uid
        # conninfo works with psql's own parser.
        out = harness.run_as_pg([harness.pg_bin('psql'), '-X', '-A', '-t', '-c',
                                 'select 42', a.conninfo()]).stdout.strip()
        assert out == '42', out
        # Errors carry stderr.
        try:
            a.psql('select * from no_such_table')
        except harness.PsqlError as e:
            assert 'no_such_table' in e.stderr, e.stderr
            assert 'no_such_table' in str(e)
        else:
            raise AssertionError('psql error not raised')
        a.stop()
        assert not a.is_running()
        assert b.is_running()
        # b is left running: the sandbox must stop it.
    harness.wait_until(lambda: _no_process_under(root), timeout=10, what='no server left')
    assert not root.exists(), f'{root} not removed'


def test_port_on_command_line_wins_over_copied_config():
    """A data directory copied from another instance (as a clone does) still starts on
    its own port and socket directory."""
    with harness.Sandbox() as sb:
        a = sb.new_instance('src')
        a.initdb()
        a.start()
        a.psql('create table t(x int); insert into t values (7)')
        a.stop()
        b = sb.new_instance('copy')
        harness.run_as_pg(['cp', '-a', a.datadir, b.datadir])
        a.start()
        b.start()
        assert b.psql('show port') == str(b.port)
        assert b.psql('select x from t') == '7'
        assert a.psql('select x from t') == '7'


def test_kill9_and_restart():
    with harness.Sandbox() as sb:
        a = sb.new_instance('crash')
        a.initdb()
        a.start()
        a.psql('create table t(x int); insert into t values (1)')
        pid = a.pid()
        a.kill9()
        assert not a.is_running()
        assert not harness._pid_alive(pid)
        with socket.socket() as s:
            assert s.connect_ex(('127.0.0.1', a.port)) != 0, 'port still accepting'
        a.start()  # crash recovery
        assert a.psql('select x from t') == '1'


def test_cleanup_on_exception_and_keep_dir():
    root = None
    try:
        with harness.Sandbox() as sb:
            root = sb.root
            a = sb.new_instance('n')
            a.initdb()
            a.start()
            raise RuntimeError('boom')
    except RuntimeError:
        pass
    assert root is not None and not root.exists()
    assert _no_process_under(root)
    # PGRM_KEEP_TEST_DIR=1 keeps the directory, but still stops the servers.
    old = os.environ.get('PGRM_KEEP_TEST_DIR')
    os.environ['PGRM_KEEP_TEST_DIR'] = '1'
    try:
        with harness.Sandbox() as sb:
            root = sb.root
            a = sb.new_instance('kept')
            a.initdb()
            a.start()
        assert root.exists()
        assert not a.is_running()
        assert _no_process_under(root)
    finally:
        if old is None:
            del os.environ['PGRM_KEEP_TEST_DIR']
        else:
            os.environ['PGRM_KEEP_TEST_DIR'] = old
        import shutil
        shutil.rmtree(root, ignore_errors=True)


def test_sigterm_stops_servers():
    """A test process killed with SIGTERM (as meson does on timeout) leaves no server."""
    import subprocess
    import textwrap
    import time
    code = textwrap.dedent(f'''
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        import harness
        sb = harness.Sandbox()
        a = sb.new_instance('victim')
        a.initdb()
        a.start()
        print(sb.root, flush=True)
        time.sleep(300)
    ''')
    p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    try:
        root = Path(p.stdout.readline().strip())
        assert root.is_dir(), root
        assert harness._processes_under(root), 'server not running'
        p.terminate()
        rc = p.wait(timeout=60)
        assert rc == 128 + 15, rc
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert _no_process_under(root)
    assert not root.exists()


def test_pgrm_runs_built_binary():
    r = harness.pgrm('--version', check=0)
    assert r.stdout.startswith('repmgr '), r.stdout
    r = harness.pgrm('--version', persona='repmgrd', check=0)
    assert r.stdout.startswith('repmgrd '), r.stdout
    try:
        harness.pgrm('--version', check=3)
    except AssertionError as e:
        assert 'exit code 0, expected 3' in str(e), str(e)
        assert '--- stdout ---' in str(e)
    else:
        raise AssertionError('check= did not assert')


def test_wait_until():
    n = [0]

    def bump():
        n[0] += 1
        return n[0] >= 3 and 'done'
    assert harness.wait_until(bump, timeout=5, interval=0.01) == 'done'
    try:
        harness.wait_until(lambda: 1 / 0, timeout=0.2, interval=0.05, what='never')
    except AssertionError as e:
        assert 'never' in str(e) and 'ZeroDivisionError' in str(e), str(e)
    else:
        raise AssertionError('wait_until did not time out')


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
