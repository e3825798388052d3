#!/usr/bin/env python3
"""What the e2e harness guarantees the other tests, and only that: each instance is
isolated on its own port and socket directory, with the settings pgrm's tests rely on
(wal_log_hints for the pg_rewind path of a rejoin; PostgreSQL as the postgres OS user
when root); and no server survives its test, whether it passed, raised, or was killed by
meson's timeout (a leftover server would break the next test file and CI's machine).
Helpers whose breakage the pgrm tests would show anyway are not tested here; the
negative tests' "nothing happened" window is, since a broken one would pass them all."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def _no_process_under(root: Path) -> bool:
    return not harness._processes_under(root)


def test_two_instances_isolated_and_stopped():
    with harness.Sandbox() as sb:
        root = sb.root
        a = sb.new_instance('node1')
        b = sb.new_instance('node2')
        assert a.port != b.port
        a.initdb()
        b.initdb({'max_connections': 30})
        a.start()
        b.start()
        # Each on its own port and socket directory, with the settings the harness promises.
        assert a.psql('show port') == str(a.port)
        assert b.psql('show port') == str(b.port)
        assert a.psql('show unix_socket_directories') == str(a.socket_dir)
        assert a.psql('show listen_addresses') == '127.0.0.1'
        assert a.psql('show wal_level') == 'replica'
        assert a.psql('show wal_log_hints') == 'on'
        assert b.psql('show max_connections') == '30'
        # Server processes run as the postgres OS user when we are root.
        if os.geteuid() == 0:
            assert a.datadir.stat().st_uid == harness._PG_PW.pw_uid
            assert Path(f'/proc/{a.pid()}').stat().st_uid == harness._PG_PW.pw_uid
        a.stop()
        assert not a.is_running()
        assert b.is_running()
        # b is left running: the sandbox must stop it.
    harness.wait_until(lambda: _no_process_under(root), timeout=10, what='no server left')
    assert not root.exists(), f'{root} not removed'


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
    code = textwrap.dedent(f'''
        import signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        import harness
        sb = harness.Sandbox()
        a = sb.new_instance('victim')
        a.initdb()
        a.start()
        print(sb.root, flush=True)
        signal.pause()
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


def test_stays_false_catches_what_happens_inside_its_window():
    """The negative tests' window must be able to fail: something that happens after a
    while inside it (not only at once) fails it, and nothing happening lasts the window."""
    import time
    start = time.monotonic()
    try:
        harness.stays_false(lambda: time.monotonic() - start > 0.5 and 'promoted', 3, interval=0.05,
                            what='a promotion')
    except AssertionError as e:
        assert 'a promotion happened within 3s' in str(e), e
        assert 0.5 <= time.monotonic() - start < 1.5
    else:
        raise AssertionError('stays_false missed the event')
    start = time.monotonic()
    harness.stays_false(lambda: False, 0.5, interval=0.05)
    assert time.monotonic() - start >= 0.5


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
