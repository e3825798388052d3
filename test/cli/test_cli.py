#!/usr/bin/env python3
"""Black-box tests of the built binaries' command line: help, version, personas, command
recognition, configuration errors, --json output, and that secrets never leak.
No PostgreSQL server is needed."""

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'e2e'))
import harness  # noqa: E402
from harness import pgrm  # noqa: E402

GOOD_CONF = "cluster='test'\nnode=1\nconninfo='host=127.0.0.1 port=1 dbname=postgres connect_timeout=1'\n"


def _tmpdir() -> tempfile.TemporaryDirectory:
    d = tempfile.TemporaryDirectory(prefix='pgrm-cli-')
    os.chmod(d.name, 0o755)
    return d


def _write(dirname: str, name: str, text: str | bytes) -> str:
    path = os.path.join(dirname, name)
    with open(path, 'wb' if isinstance(text, bytes) else 'w') as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def _error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith('ERROR:')]


def _one_json(stdout: str) -> dict:
    """stdout must hold exactly one JSON document and nothing else."""
    text = stdout.strip()
    assert text, 'stdout is empty, expected one JSON document'
    decoder = json.JSONDecoder()
    try:
        doc, end = decoder.raw_decode(text)
    except json.JSONDecodeError as e:
        raise AssertionError(f'stdout is not JSON ({e}):\n{stdout}') from None
    assert text[end:].strip() == '', f'more than one JSON document on stdout:\n{stdout}'
    assert isinstance(doc, dict), f'JSON document is not an object:\n{stdout}'
    return doc


# ---------------------------------------------------------------------------- help


def test_binaries_exist():
    for persona in ('pgrm', 'repmgr', 'repmgrd'):
        path = harness.pgrm_path(persona)
        assert path.exists(), f'{path} missing (build dir {harness.BUILD_DIR})'
        assert os.access(path, os.X_OK), f'{path} not executable'


def test_repmgr_help():
    r = pgrm('--help', check=0)
    for needle in ('Usage:',
                   ' repmgr [OPTIONS] master  {register|unregister}',
                   'standby {register|clone|promote|follow|unregister|switchover}',
                   'General options:',
                   'Connection options:',
                   'Configuration options:',
                   '-h, --host=HOSTNAME',
                   'COMMANDS:'):
        assert needle in r.stdout, f'{needle!r} not in repmgr --help:\n{r.stdout}'
    assert r.stderr == '', f'repmgr --help wrote to stderr:\n{r.stderr}'


def test_repmgr_help_seed_options():
    r = pgrm('--help', check=0)
    for opt in ('--help', '--version', '--verbose', '-d, --dbname=DBNAME',
                '-p, --port=PORT', '-U, --username=USERNAME', '-D, --data-dir=DIR',
                '-f, --config_file=PATH', '-R, --remote-user=USERNAME',
                '-w, --wal-keep-segments=VALUE', '-I, --ignore-rsync-warning', '-F, --force'):
        assert opt in r.stdout, f'{opt!r} not in repmgr --help'
    for cmd in ('master register', 'standby register', 'standby clone', 'standby promote',
                'standby follow'):
        assert cmd in r.stdout, f'{cmd!r} not listed under COMMANDS'


def test_repmgrd_help():
    r = pgrm('--help', persona='repmgrd', check=0)
    assert 'repmgrd [OPTIONS]' in r.stdout, r.stdout
    assert '-f, --config_file=PATH' in r.stdout, r.stdout
    assert r.stderr == '', r.stderr


def test_pgrm_help():
    r = pgrm('--help', persona='pgrm', check=0)
    assert 'Usage:' in r.stdout, r.stdout
    assert r.stderr == '', r.stderr


def test_pgrm_repmgr_help_equals_repmgr_help():
    direct = pgrm('--help', check=0)
    via = pgrm('repmgr', '--help', persona='pgrm', check=0)
    assert via.stdout == direct.stdout, (
        f'"pgrm repmgr --help" differs from "repmgr --help":\n'
        f'--- pgrm repmgr ---\n{via.stdout}--- repmgr ---\n{direct.stdout}')
    assert via.stdout.startswith('repmgr'), via.stdout


def test_pgrm_repmgrd_help_equals_repmgrd_help():
    direct = pgrm('--help', persona='repmgrd', check=0)
    via = pgrm('repmgrd', '--help', persona='pgrm', check=0)
    assert via.stdout == direct.stdout, f'{via.stdout}\n---\n{direct.stdout}'


# ---------------------------------------------------------------------------- version


def _check_version(persona: str, prefix: str):
    r = pgrm('--version', persona=persona, check=0)
    lines = r.stdout.splitlines()
    assert len(lines) == 1, f'{persona} --version printed {len(lines)} lines:\n{r.stdout}'
    assert lines[0].startswith(prefix), lines[0]
    assert r.stderr == '', r.stderr


def test_repmgr_version():
    _check_version('repmgr', 'repmgr ')


def test_repmgrd_version():
    _check_version('repmgrd', 'repmgrd ')


def test_pgrm_version():
    _check_version('pgrm', 'pgrm ')


# ---------------------------------------------------------------------------- -h is host


def test_dash_h_is_host_not_help():
    r = pgrm('-h', 'somehost', '--help', check=0)
    assert 'Usage:' in r.stdout, r.stdout


def test_dash_h_missing_value():
    r = pgrm('-h', check=1)
    assert 'Usage:' not in r.stdout, 'repmgr -h printed help; -h is --host'
    assert r.stderr.strip(), 'no error message on stderr'


# ---------------------------------------------------------------------------- commands


def test_unknown_subcommand():
    r = pgrm('standby', 'frobnicate', check=1)
    errors = _error_lines(r.stderr)
    assert len(errors) == 1, f'expected one ERROR: line on stderr:\n{r.stderr}'
    assert 'frobnicate' in errors[0], errors[0]


def test_unknown_group():
    r = pgrm('nosuch', check=1)
    assert 'nosuch' in r.stderr, r.stderr


def test_no_arguments():
    r = pgrm(check=1)
    assert _error_lines(r.stderr), f'no ERROR: line on stderr:\n{r.stderr}'


def test_group_without_command():
    r = pgrm('standby', check=1)
    assert 'missing command' in r.stderr, r.stderr


def _assert_config_missing(*args):
    r = pgrm(*args, check=1)
    assert '/nonexistent.conf' in r.stderr, (
        f'repmgr {" ".join(args)}: expected an error naming /nonexistent.conf:\n{r.stderr}')


def test_group_name_is_case_insensitive():
    _assert_config_missing('MASTER', 'register', '-f', '/nonexistent.conf')


def test_primary_is_alias_of_master():
    _assert_config_missing('primary', 'register', '-f', '/nonexistent.conf')


def test_options_before_and_after_command():
    _assert_config_missing('-f', '/nonexistent.conf', 'standby', 'register')
    _assert_config_missing('standby', 'register', '--config_file=/nonexistent.conf')


def test_switchover_takes_repmgr5s_siblings_follow():
    """repmgr 5 scripts pass --siblings-follow, which is what pgrm always does: it parses,
    and the command goes on to need its configuration file."""
    _assert_config_missing('-f', '/nonexistent.conf', 'standby', 'switchover', '--siblings-follow', '--dry-run')


def _json_command(*args, persona='repmgr') -> str:
    """The command a line runs, as its --json error document names it (the config
    file is missing, so nothing runs past the dispatcher)."""
    r = pgrm('--json', *args, '-f', '/nonexistent.conf', persona=persona, check=1)
    return _one_json(r.stdout)['command']


def test_service_commands_and_their_daemon_alias():
    """repmgr 5's service pause|unpause|status; repmgr 4's daemon pause|unpause|status
    reach the same commands, in repmgr's tree and in pgrm's, where daemon alone is still
    the daemon itself, as repmgrd is."""
    for verb in ('pause', 'unpause', 'status'):
        assert _json_command('service', verb) == f'service {verb}'
        assert _json_command('daemon', verb) == f'service {verb}'
        assert _json_command('service', verb, persona='pgrm') == f'service {verb}'
        assert _json_command('daemon', verb, persona='pgrm') == f'service {verb}'
    assert _json_command('service', 'pause', '--dry-run') == 'service pause'
    assert _json_command('daemon', 'unpause', '--dry-run', persona='pgrm') == 'service unpause'
    assert _json_command('daemon', persona='pgrm') == 'daemon'
    assert _json_command('daemon', '--pid-file', '/nonexistent.pid', persona='pgrm') == 'daemon'
    assert _json_command(persona='repmgrd') == 'daemon'
    r = pgrm('daemon', check=1)
    assert 'missing command: service {status|pause|unpause}' in r.stderr, r.stderr
    r = pgrm('--help', check=0)
    assert ' repmgr [OPTIONS] service {status|pause|unpause}' in r.stdout, r.stdout
    r = pgrm('daemon', 'pause', '--help', check=0)
    assert r.stdout.startswith('Usage:\n repmgr [OPTIONS] service pause\n'), r.stdout
    assert '--dry-run' in r.stdout, r.stdout


# ---------------------------------------------------------------------------- config


def test_config_bad_integer():
    with _tmpdir() as d:
        path = _write(d, 'bad.conf', "cluster='test'\nnode=abc\nconninfo='host=127.0.0.1'\n")
        r = pgrm('-f', path, 'standby', 'register', check=1)
        assert path in r.stderr, f'file name not in stderr:\n{r.stderr}'
        assert ':2' in r.stderr, f'line number 2 not in stderr:\n{r.stderr}'
        assert 'node' in r.stderr, r.stderr


def test_config_missing_cluster():
    with _tmpdir() as d:
        path = _write(d, 'nocluster.conf', "node=1\nconninfo='host=127.0.0.1'\n")
        r = pgrm('-f', path, 'standby', 'register', check=1)
        assert 'cluster' in r.stderr, r.stderr


# ---------------------------------------------------------------------------- --json


def test_json_missing_config():
    r = pgrm('--json', 'standby', 'register', '-f', '/nonexistent.conf', check=1)
    doc = _one_json(r.stdout)
    assert doc.get('error', {}).get('code') == 1, doc
    assert doc['error'].get('name') == 'ERR_BAD_CONFIG', doc


def test_json_unknown_command():
    r = pgrm('--json', 'standby', 'frobnicate', check=1)
    doc = _one_json(r.stdout)
    assert doc.get('error', {}).get('code') == 1, doc


# ---------------------------------------------------------------------------- hostile input
# Found by fuzzing: each of these ended the program (SIGABRT, SIGSEGV) instead of an error.

FFFD = '\ufffd'  # what a byte that is not UTF-8 becomes in the JSON document
XFF = '\udcff'   # the byte 0xff as an argument (Python's surrogateescape)


def test_json_survives_an_argument_that_is_not_utf8():
    r = pgrm(XFF, '--json', check=1)
    doc = _one_json(r.stdout)
    assert doc['error']['name'] == 'ERR_BAD_CONFIG', doc
    assert FFFD in doc['error']['message'], doc


def test_json_survives_a_path_that_is_not_utf8():
    r = pgrm('-f', f'/nonexistent/{XFF}.conf', 'cluster', 'show', '--json', check=1)
    doc = _one_json(r.stdout)
    assert f'/nonexistent/{FFFD}.conf' in doc['error']['message'], doc


def test_json_survives_a_config_value_that_is_not_utf8():
    with _tmpdir() as d:
        path = _write(d, 'latin1.conf', GOOD_CONF.encode() + b'failover=autom\xe9tique\n')
        r = pgrm('-f', path, 'cluster', 'show', '--json', check=1)
        doc = _one_json(r.stdout)
        assert doc['error']['message'] == (f'{path}:4: failover: invalid value "autom{FFFD}tique": '
                                           'must be automatic or manual'), doc
        path = _write(d, 'name.conf', GOOD_CONF.encode() + b'node_name=caf\xe9\n')
        r = pgrm('-f', path, 'cluster', 'show', '--json', check=1)
        assert _one_json(r.stdout)['error']['message'] == f'{path}:4: node_name: must be valid UTF-8'


def test_toml_typo_is_an_error():
    with _tmpdir() as d:
        path = _write(d, 'x.conf', '[=\n')
        r = pgrm('-f', path, 'cluster', 'show', check=1)
        errors = _error_lines(r.stderr)
        assert errors and errors[0].startswith(f'ERROR: {path}:1: error while parsing key'), r.stderr


def test_toml_non_ascii_outside_strings_is_an_error():
    with _tmpdir() as d:
        path = _write(d, 'x.toml', "cluster = 'test'\nnode = 1\nconninfo = 'host=a'\nfailover=\u00e9\n")
        r = pgrm('-f', path, 'cluster', 'show', check=1)
        assert _error_lines(r.stderr) == [
            f'ERROR: {path}:4: syntax error: a non-ASCII character outside a quoted string or a comment'
        ], r.stderr


def test_long_password_argument_is_redacted_not_a_crash():
    secret = 'x' * 20000
    with _tmpdir() as d:
        path = _write(d, 'good.conf', GOOD_CONF)
        for arg in (f"password='{secret}'", f'password={secret}'):
            r = pgrm('-f', path, 'cluster', 'show', arg, check=1)
            assert _error_lines(r.stderr) == ['ERROR: unknown command or argument "password=********"'], \
                r.stderr[:500]


def test_port_out_of_range_is_a_usage_error_not_a_connection_error():
    with _tmpdir() as d:
        path = _write(d, 'good.conf', GOOD_CONF)
        r = pgrm('-f', path, '-p', '-1', 'standby', 'clone', '127.0.0.1', check=1)
        assert _error_lines(r.stderr) == [
            'ERROR: --port: invalid value "-1": must be a port number from 1 to 65535'], r.stderr
        bad = _write(d, 'bad.conf', GOOD_CONF.replace('port=1', 'port=0'))
        r = pgrm('-f', bad, 'cluster', 'show', check=1)
        assert _error_lines(r.stderr) == [
            f'ERROR: {bad}:3: conninfo: invalid port "0": must be a port number from 1 to 65535'], r.stderr


def test_option_name_is_not_swallowed_as_a_value():
    r = pgrm('-f', '--json', 'cluster', 'show', check=1)
    doc = _one_json(r.stdout)
    assert doc['error']['message'] == 'missing value for "-f": "--json" is an option', doc


def test_wal_keep_segments_zero_has_a_short_message():
    r = pgrm('-w', '0', 'standby', 'clone', '127.0.0.1', check=1)
    assert _error_lines(r.stderr) == [
        'ERROR: --wal-keep-segments: invalid value "0": must be an integer from 1 to 2147483647'], r.stderr


def test_config_nul_byte_and_repeated_setting():
    with _tmpdir() as d:
        path = _write(d, 'nul.conf', GOOD_CONF.encode() + b'node_name=ab\0cd\n')
        r = pgrm('-f', path, 'cluster', 'show', check=1)
        assert _error_lines(r.stderr) == [f'ERROR: {path}:4: syntax error: a NUL byte'], r.stderr
        path = _write(d, 'twice.conf', GOOD_CONF + 'node_id=2\n')
        r = pgrm('-f', path, 'cluster', 'show', '--json', check=6)
        assert _one_json(r.stdout)['warnings'] == [
            f'{path}:4: "node_id" sets "node" again (first set on line 2); this value wins']


def test_daemon_refuses_a_log_file_it_cannot_write():
    with _tmpdir() as d:
        path = _write(d, 'full.conf', GOOD_CONF + 'log_file=/dev/full\n')
        r = pgrm('-f', path, persona='repmgrd', check=1, timeout=30)
        assert _error_lines(r.stderr) == [
            'ERROR: could not write to log file "/dev/full": No space left on device'], r.stderr


# ---------------------------------------------------------------------------- personas


def test_unknown_persona_name():
    with _tmpdir() as d:
        link = Path(d) / 'foo'
        link.symlink_to(harness.pgrm_path('pgrm'))
        import subprocess
        r = subprocess.run([str(link), '--help'], capture_output=True, text=True, timeout=60,
                           env=harness.clean_env())
        assert r.returncode != 0, f'persona "foo" ran (exit 0):\n{r.stdout}'
        assert 'foo' in r.stderr, f'error does not name "foo":\n{r.stderr}'


# ---------------------------------------------------------------------------- secrets


def test_password_never_printed():
    secret = 's3cr3tpw'
    with _tmpdir() as d:
        path = _write(d, 'secret.conf',
                      "cluster='test'\nnode=1\n"
                      f"conninfo='host=127.0.0.1 port=1 password={secret} connect_timeout=1'\n")
        for extra in (['--json'], ['--verbose'], ['--json', '--verbose']):
            for cmd in (['standby', 'register'], ['master', 'register']):
                r = pgrm(*extra, '-f', path, *cmd, timeout=60)
                where = f'repmgr {" ".join(extra + ["-f", path] + cmd)}'
                assert r.returncode != 0, f'{where}: exit 0 against a closed port'
                assert secret not in r.stdout, f'{where}: password on stdout:\n{r.stdout}'
                assert secret not in r.stderr, f'{where}: password on stderr:\n{r.stderr}'


if __name__ == '__main__':
    sys.exit(harness.main(globals(), needs_pg=False))
