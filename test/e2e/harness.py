"""End-to-end test harness for pgrm: real PostgreSQL instances in a throw-away sandbox.

Python 3 standard library only (works with Debian 12's /usr/bin/python3, 3.11).

Typical use, in test/e2e/test_something.py:

    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

    def test_two_nodes():
        with harness.Sandbox() as sb:
            a = sb.new_instance('node1')
            a.initdb()
            a.start()
            assert a.psql('select 1') == '1'

    if __name__ == '__main__':
        sys.exit(harness.main(globals()))

Besides Sandbox and Instance it holds the setup steps that the tests and the benchmarks
(bench/benchlib.py) share: make_primary, conf_text/write_conf, clone_args, pgbench,
wait_streaming_from, output, parse_json, freeze/thaw, ... Add such a helper here, once,
rather than copying it into a test.

Environment:
    PG_BINDIR            PostgreSQL binaries (default: highest /usr/lib/postgresql/*/bin)
    PGRM_BUILD_DIR       meson build dir holding cmd/pgrm (default: <repo>/build)
    PGRM_KEEP_TEST_DIR=1 keep the sandbox directories for inspection

When run as root, everything PostgreSQL (initdb, pg_ctl, the server, psql) runs as the
OS user `postgres`; otherwise as the current user.
"""

from __future__ import annotations

import atexit
import base64
import http.client
import ctypes
import fcntl
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

__all__ = [
    'PG_BINDIR', 'PG_USER', 'BUILD_DIR', 'SkipTest', 'PsqlError', 'Instance', 'Sandbox',
    'pg_bin', 'pgrm', 'pgrm_path', 'run_as_pg', 'wait_until', 'stays_false', 'main', 'clean_env',
    'output', 'parse_json', 'children_of', 'freeze', 'thaw', 'end_process_group',
    'pgbench', 'pgbench_background', 'popen_as_pg', 'make_primary', 'conf_text', 'write_conf',
    'clone_args',
    'receiver', 'streaming', 'wait_streaming', 'wait_streaming_from', 'assert_read_only',
    'WALK_TABLE', 'primary_conninfo', 'Cluster', 'small_cluster', 'hold_all_connections',
    'Daemon', 'log_of', 'DAEMON_FAST', 'writable', 'in_recovery', 'daemon_settings',
    'daemon_conf_text', 'write_daemon_conf', 'DaemonCluster', 'daemon_cluster', 'setup_three',
    'setup_partitioned', 'pgbench_load', 'AckWriter', 'TwoPrimaries', 'one_promoted',
    'Namespace', 'NetNamespace', 'Bridge', 'EtcdCluster', 'Certificates',
]

# --------------------------------------------------------------------------------------
# Locations


def _version_key(path: Path):
    parts = []
    for p in re.split(r'[^0-9]+', path.parent.name):
        if p:
            parts.append(int(p))
    return parts


def find_pg_bindir() -> Path | None:
    """env PG_BINDIR, else the highest /usr/lib/postgresql/*/bin holding pg_ctl."""
    env = os.environ.get('PG_BINDIR')
    if env:
        return Path(env)
    candidates = [p for p in Path('/usr/lib/postgresql').glob('*/bin') if (p / 'pg_ctl').is_file()]
    if not candidates:
        return None
    return max(candidates, key=_version_key)


PG_BINDIR: Path | None = find_pg_bindir()


def _default_build_dir() -> Path:
    env = os.environ.get('PGRM_BUILD_DIR')
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2] / 'build'


BUILD_DIR: Path = _default_build_dir()

IS_ROOT = os.geteuid() == 0


def _pg_account() -> pwd.struct_passwd:
    if IS_ROOT:
        return pwd.getpwnam('postgres')
    return pwd.getpwuid(os.geteuid())


try:
    _PG_PW: pwd.struct_passwd | None = _pg_account()
except KeyError:  # root without a postgres user
    _PG_PW = None

# The OS user PostgreSQL runs as, which is also the bootstrap superuser initdb creates.
PG_USER: str = _PG_PW.pw_name if _PG_PW else 'postgres'


class SkipTest(Exception):
    """Raise from a test (or have main() raise) to skip it; main() then returns 77."""


def pg_bin(name: str) -> str:
    if PG_BINDIR is None:
        raise SkipTest('no PostgreSQL binaries: set PG_BINDIR or install postgresql')
    path = PG_BINDIR / name
    if not path.is_file():
        raise SkipTest(f'{path} does not exist')
    return str(path)


# --------------------------------------------------------------------------------------
# Running programs

# libpq's (and pg_ctl's) environment variables: PGHOST, PGPORT, PGPASSWORD, PGDATA, ...
# They are all PG followed by capitals, without underscore (unlike PG_BINDIR, PGRM_*).
_LIBPQ_ENV = re.compile(r'^PG[A-Z]+$')


def clean_env(extra: dict | None = None, home: str | None = None) -> dict:
    """The current environment minus libpq's PG* variables, plus extra."""
    env = {k: v for k, v in os.environ.items() if not _LIBPQ_ENV.match(k)}
    if home is not None:
        env['HOME'] = home
        env['USER'] = env['LOGNAME'] = PG_USER
    env.setdefault('LC_ALL', 'C.UTF-8')
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
    return env


def _demote_fn() -> Callable[[], None] | None:
    """preexec_fn switching to the postgres user when we are root."""
    if not IS_ROOT:
        return None
    if _PG_PW is None:
        raise RuntimeError('running as root but there is no "postgres" OS user')
    uid, gid, name = _PG_PW.pw_uid, _PG_PW.pw_gid, _PG_PW.pw_name

    def demote():
        os.initgroups(name, gid)
        os.setgid(gid)
        os.setuid(uid)
    return demote


def run_as_pg(argv: list, *, check: bool = True, env: dict | None = None,
              cwd: str | os.PathLike | None = None, timeout: float | None = 120,
              input: str | None = None, netns: 'NetNamespace | None' = None) -> subprocess.CompletedProcess:
    """Runs argv as the PostgreSQL OS user, capturing text output; inside netns if given."""
    home = _PG_PW.pw_dir if (IS_ROOT and _PG_PW) else None
    if cwd is None:
        cwd = '/'  # root's cwd may not be readable by postgres
    demote = _demote_fn()

    def preexec():
        if netns is not None:
            netns.enter()
        if demote is not None:
            demote()
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=clean_env(env, home),
        cwd=str(cwd), timeout=timeout, input=input,
        preexec_fn=preexec if (netns is not None or demote is not None) else None)
    if check and proc.returncode != 0:
        raise PsqlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


class PsqlError(subprocess.CalledProcessError):
    """A CalledProcessError whose message includes stderr (and stdout)."""

    def __str__(self):
        text = super().__str__()
        if self.stderr:
            text += '\n--- stderr ---\n' + self.stderr.rstrip()
        if self.stdout:
            text += '\n--- stdout ---\n' + self.stdout.rstrip()
        return text


def pgrm_path(persona: str = 'repmgr') -> Path:
    return BUILD_DIR / 'cmd' / persona


def pgrm(*args, persona: str = 'repmgr', check: int | None = None, env: dict | None = None,
         cwd: str | os.PathLike | None = None, timeout: float = 300, input: str | None = None,
         as_pg_user: bool = False, netns: 'NetNamespace | None' = None) -> subprocess.CompletedProcess:
    """Runs the built binary through its persona symlink (<builddir>/cmd/<persona>).

    Output is captured as text. check=N asserts the exit code is N (the message shows the
    command, stdout and stderr). libpq's PG* variables are removed from the environment;
    pass env= to set some. as_pg_user=True runs it as the postgres OS user when we are root
    (as repmgr is run in production, so files it creates belong to postgres). netns= runs
    it inside that network namespace, as on another host.
    """
    exe = pgrm_path(persona)
    argv = [str(exe)] + [str(a) for a in args]
    if netns is not None:
        argv = netns.argv(argv)
    if as_pg_user and IS_ROOT:
        proc = run_as_pg(argv, check=False, env=env, cwd=cwd, timeout=timeout, input=input)
    else:
        proc = subprocess.run(argv, capture_output=True, text=True, env=clean_env(env),
                              cwd=None if cwd is None else str(cwd), timeout=timeout,
                              input=input)
    if check is not None:
        assert proc.returncode == check, (
            f'{" ".join(argv)}: exit code {proc.returncode}, expected {check}\n'
            f'--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}')
    return proc


def output(proc: subprocess.CompletedProcess) -> str:
    """proc's stdout and stderr, headed, for an assertion message."""
    return f'--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}'


def parse_json(proc: subprocess.CompletedProcess, what: str,
               error: type[BaseException] = AssertionError) -> dict:
    """proc's stdout as one JSON document; else raises error (AssertionError for a
    test, SystemExit for a benchmark) naming what, with the output."""
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise error(f'{what}: stdout is not one JSON document ({e})\n{output(proc)}')


def http_status(port: int, path: str) -> int:
    """The status of GET path from an HTTP endpoint on 127.0.0.1:port, on a new connection
    (as a load balancer's check makes it)."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    try:
        conn.request('GET', path)
        return conn.getresponse().status
    finally:
        conn.close()


def wait_until(predicate: Callable[[], object], timeout: float = 30, interval: float = 0.2,
               what: str = ''):
    """Calls predicate until it returns something truthy (returned); exceptions count as
    false. Raises AssertionError after timeout seconds, naming `what` and the last error."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        if time.monotonic() >= deadline:
            msg = f'timed out after {timeout}s waiting for {what or getattr(predicate, "__name__", "condition")}'
            if last_exc is not None:
                msg += f' (last error: {type(last_exc).__name__}: {last_exc})'
            raise AssertionError(msg)
        time.sleep(interval)


def stays_false(predicate: Callable[[], object], seconds: float, interval: float = 0.2,
                what: str = ''):
    """The bounded "nothing happened" window of a negative test: calls predicate for
    `seconds` and raises AssertionError, naming `what` and the value, as soon as it
    returns something truthy. Exceptions count as false, as in wait_until. Wait for the
    condition that makes the window meaningful (the daemon decided) before calling it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - a failed probe is not the event
            value = None
        if value:
            raise AssertionError(f'{what or getattr(predicate, "__name__", "condition")} happened '
                                 f'within {seconds}s: {value!r}')
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# Processes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        return state != 'Z'
    except (OSError, IndexError):
        return True


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _read_pidfile(datadir: Path) -> int | None:
    try:
        first = (datadir / 'postmaster.pid').read_text().split('\n', 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def _ppid(pid: int) -> int | None:
    """The parent of pid, from /proc; None when it cannot be read (gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return int(f.read().rsplit(')', 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _ancestors() -> set:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        pid = _ppid(pid)
        if pid is None:
            break
    return pids


def children_of(pid: int) -> list:
    """Pids of the processes whose parent is pid."""
    return [int(e) for e in os.listdir('/proc') if e.isdigit() and _ppid(int(e)) == pid]


def freeze(pid: int) -> list:
    """SIGSTOPs pid (a postmaster), then every process it forked. Returns the pids
    stopped, for thaw()."""
    os.kill(pid, signal.SIGSTOP)
    pids = [pid]
    for kid in children_of(pid):
        try:
            os.kill(kid, signal.SIGSTOP)
            pids.append(kid)
        except ProcessLookupError:
            pass
    return pids


def thaw(pids: list):
    """SIGCONTs every pid still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def end_process_group(proc: subprocess.Popen, term_timeout: float | None = 5) -> int | None:
    """Ends proc, started with start_new_session=True, and all it started: SIGTERM and
    up to term_timeout seconds to exit (no SIGTERM when term_timeout is None), then SIGKILL
    to its process group. Returns its exit code (None if still not reaped)."""
    if term_timeout is not None and proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(term_timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    return proc.returncode


def _processes_under(root: Path) -> list:
    """Pids of processes whose cwd, or whose -D argument, is inside root. PostgreSQL's
    postmaster and every backend run with the data directory as cwd."""
    root_s = str(root)
    mine = _ancestors()
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in mine:
            continue
        hit = False
        try:
            cwd = os.readlink(f'/proc/{pid}/cwd')
            hit = cwd == root_s or cwd.startswith(root_s + '/')
        except OSError:
            pass
        if not hit:
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    argv = f.read().split(b'\0')
                for i, a in enumerate(argv):
                    a = a.decode(errors='replace')
                    if a == '-D' and i + 1 < len(argv):
                        a = argv[i + 1].decode(errors='replace')
                    elif a.startswith('-D'):
                        a = a[2:]
                    elif a.startswith('--pgdata='):
                        a = a[len('--pgdata='):]
                    else:
                        continue
                    if a == root_s or a.startswith(root_s + '/'):
                        hit = True
                        break
            except OSError:
                pass
        if hit and _pid_alive(pid):
            found.append(pid)
    return found


# --------------------------------------------------------------------------------------
# Instances


class Instance:
    """One PostgreSQL server: a data directory, a port, a socket directory and a log."""

    def __init__(self, name: str, port: int, datadir: Path, logfile: Path, socket_dir: Path,
                 sandbox: 'Sandbox | None' = None):
        self.name = name
        self.port = port
        self.datadir = Path(datadir)
        self.logfile = Path(logfile)
        self.socket_dir = Path(socket_dir)
        self.sandbox = sandbox
        self.superuser = PG_USER
        # Set before start() to run the server on another host; psql then goes through
        # the Unix socket, which the shared filesystem reaches from any namespace.
        self.netns: 'NetNamespace | None' = None

    def __repr__(self):
        return f'Instance({self.name!r}, port={self.port}, datadir={str(self.datadir)!r})'

    # -- setup

    def _ensure_socket_dir(self):
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if IS_ROOT and _PG_PW:
            os.chown(self.socket_dir, _PG_PW.pw_uid, _PG_PW.pw_gid)

    def base_conf(self) -> dict:
        return {
            'port': self.port,
            'listen_addresses': '127.0.0.1',
            'unix_socket_directories': str(self.socket_dir),
            'wal_level': 'replica',
            'max_wal_senders': 10,
            'hot_standby': 'on',
            'wal_log_hints': 'on',
            'wal_keep_size': '256MB',
            'max_replication_slots': 10,
            'logging_collector': 'off',
        }

    def initdb(self, extra_conf: dict | None = None):
        """Creates the cluster (trust auth) and appends the replication-ready settings."""
        self._ensure_socket_dir()
        run_as_pg([pg_bin('initdb'), '-D', self.datadir, '-A', 'trust', '-U', self.superuser,
                   '-E', 'UTF8', '--no-locale', '--no-instructions'], timeout=300)
        conf = self.base_conf()
        if extra_conf:
            conf.update(extra_conf)
        self.append_conf(conf, header='pgrm e2e harness')

    def append_conf(self, settings: dict, header: str | None = None):
        """Appends settings to postgresql.conf (values quoted as needed)."""
        lines = [f'\n# {header}'] if header else ['']
        for k, v in settings.items():
            lines.append(f'{k} = {_conf_value(v)}')
        with open(self.datadir / 'postgresql.conf', 'a') as f:
            f.write('\n'.join(lines) + '\n')

    # -- lifecycle

    def _server_opts(self) -> str:
        # Always on the command line: a cloned data directory carries its source's
        # postgresql.conf, but must still come up on its own port and socket directory.
        return f'-p {self.port} -k {self.socket_dir}'

    def start(self, wait: bool = True, timeout: int = 120, overrides: bool = True):
        """pg_ctl start; overrides=False leaves out the port and socket directory
        options, so the server runs on what its own configuration files say."""
        self._ensure_socket_dir()
        argv = [pg_bin('pg_ctl'), '-D', self.datadir, '-l', self.logfile, '-t', str(timeout)]
        if overrides:
            argv += ['-o', self._server_opts()]
        argv += ['-w'] if wait else ['-W']
        argv.append('start')
        try:
            run_as_pg(argv, timeout=timeout + 30, netns=self.netns)
        except PsqlError as e:
            e.stderr = (e.stderr or '') + self.log_tail()
            raise

    def stop(self, mode: str = 'fast', timeout: int = 120):
        run_as_pg([pg_bin('pg_ctl'), '-D', self.datadir, '-m', mode, '-w', '-t', str(timeout),
                   'stop'], timeout=timeout + 30)

    def restart(self, mode: str = 'fast'):
        if self.is_running():
            self.stop(mode)
        self.start()

    def pid(self) -> int | None:
        """The postmaster's pid if it is running."""
        pid = _read_pidfile(self.datadir)
        return pid if pid is not None and _pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def kill9(self, wait: bool = True, timeout: float = 30):
        """SIGKILLs the postmaster (a crash); its backends die on their own soon after."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if wait:
            # Wait until the pid is gone, not merely a zombie: until its parent (init)
            # reaps it, kill(pid, 0) succeeds, and a new postmaster would take the stale
            # postmaster.pid for a live server and refuse to start.
            wait_until(lambda: _pid_gone(pid), timeout=timeout,
                       what=f'postmaster {pid} of {self.name} to die and be reaped')
            # Backends notice the postmaster's death and exit; wait for them too, so
            # that a restart finds the shared memory free.
            wait_until(lambda: not _processes_under(self.datadir), timeout=timeout,
                       what=f'backends of {self.name} to exit')

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.logfile.read_text(errors='replace').splitlines()[-lines:]
        except OSError:
            return ''
        return f'\n--- {self.logfile} (last {len(text)} lines) ---\n' + '\n'.join(text) + '\n'

    # -- clients

    def conninfo(self, db: str = 'postgres', user: str | None = None) -> str:
        return f'host=127.0.0.1 port={self.port} dbname={db} user={user or self.superuser}'

    def psql(self, sql: str, db: str = 'postgres', user: str | None = None,
             timeout: float = 120) -> str:
        """Runs sql through psql (unaligned, tuples only, stop on error); returns stdout
        stripped. Raises PsqlError (a CalledProcessError) carrying stderr on failure."""
        proc = run_as_pg([pg_bin('psql'), '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
                          '-h', str(self.socket_dir) if self.netns else '127.0.0.1',
                          '-p', str(self.port), '-U', user or self.superuser,
                          '-d', db, '-c', sql], timeout=timeout)
        return proc.stdout.strip()

    def is_in_recovery(self) -> bool:
        return self.psql('select pg_is_in_recovery()') == 't'

    def accepts_connections(self) -> bool:
        try:
            return self.psql('select 1', timeout=10) == '1'
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False


class DebianInstance(Instance):
    """A cluster made as Debian makes them (pg_createcluster VERSION NAME): data in
    /var/lib/postgresql/VERSION/NAME, configuration in /etc/postgresql/VERSION/NAME (none
    in the data directory), started and stopped with pg_ctlcluster only. drop() removes
    it with pg_dropcluster --stop; create() drops a leftover of an interrupted run first."""

    def __init__(self, name: str, port: int, version: str = '15'):
        super().__init__(name, port, Path(f'/var/lib/postgresql/{version}/{name}'),
                         Path(f'/var/log/postgresql/postgresql-{version}-{name}.log'),
                         Path('/var/run/postgresql'))
        self.version = version
        self.etc = Path(f'/etc/postgresql/{version}/{name}')

    @staticmethod
    def available() -> bool:
        return Path('/usr/bin/pg_createcluster').exists() and IS_ROOT

    def create(self, settings: dict | None = None):
        """pg_createcluster, then what replication needs (and settings) in a file of
        conf.d, which Debian's postgresql.conf includes; pg_hba trusts loopback."""
        self.drop()
        subprocess.run(['pg_createcluster', self.version, self.name, '-p', str(self.port)],
                       check=True, capture_output=True, timeout=300)
        conf = {'listen_addresses': '127.0.0.1', 'wal_log_hints': True, 'wal_keep_size': '256MB',
                'max_wal_senders': 10, 'max_replication_slots': 10, 'hot_standby': True, **(settings or {})}
        (self.etc / 'conf.d' / 'pgrm_e2e.conf').write_text(
            ''.join(f'{k} = {_conf_value(v)}\n' for k, v in conf.items()))
        (self.etc / 'pg_hba.conf').write_text(
            'local all all trust\nhost all all 127.0.0.1/32 trust\n'
            'host replication all 127.0.0.1/32 trust\n')

    def exists(self) -> bool:
        return self.etc.exists()

    def drop(self):
        if self.exists():
            subprocess.run(['pg_dropcluster', '--stop', self.version, self.name], capture_output=True, timeout=120)
            # pg_dropcluster leaves the configuration directory when it holds a file it did
            # not make (ours: conf.d/pgrm_e2e.conf): every run left one in /etc/postgresql.
            shutil.rmtree(self.etc, ignore_errors=True)

    def ctl(self, action: str):
        subprocess.run(['pg_ctlcluster', self.version, self.name, action], check=True,
                       capture_output=True, timeout=300)

    def start(self, wait: bool = True, timeout: int = 120, overrides: bool = True):
        self.ctl('start')

    def stop(self, mode: str = 'fast', timeout: int = 120):
        self.ctl('stop')

    def etc_files(self) -> dict:
        return {p: p.read_bytes() for p in sorted(self.etc.rglob('*')) if p.is_file()}


def _conf_value(v) -> str:
    if isinstance(v, bool):
        return 'on' if v else 'off'
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if re.fullmatch(r'-?[0-9]+(\.[0-9]+)?', s) or s in ('on', 'off', 'true', 'false'):
        return s
    return "'" + s.replace("'", "''") + "'"


# --------------------------------------------------------------------------------------
# Sandbox

_live_sandboxes: list = []
_hooks_installed = False
_hooks_lock = threading.Lock()


def _cleanup_all():
    for sb in list(_live_sandboxes):
        try:
            sb.cleanup()
        except Exception:  # noqa: BLE001 - best effort at exit
            traceback.print_exc()


def _on_sigterm(signum, frame):
    _cleanup_all()
    raise SystemExit(128 + signum)


def _install_hooks():
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        atexit.register(_cleanup_all)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) in (signal.SIG_DFL, None):
                    signal.signal(sig, _on_sigterm)


def _port_free(port: int) -> bool:
    # Nothing listening (a connect is refused) ...
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(('127.0.0.1', port))
            return False
        except OSError:
            pass
    # ... and we can bind it ourselves (no SO_REUSEADDR: stricter, like the postmaster).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


_held: dict = {}   # what this process reserved -> the descriptor holding its lock


def reserve(kind: str, value) -> bool:
    """Reserves kind/value (a port, a subnet) for this process's life, across the tests
    that run at the same time: an exclusive lock on a file under /tmp, released by the
    kernel when the process ends, however it ends. False when another process holds it."""
    key = f'{kind}-{value}'
    if key in _held:
        return False
    lock_dir = Path(tempfile.gettempdir()) / 'pgrm-test-locks'
    lock_dir.mkdir(mode=0o1777, exist_ok=True)
    fd = os.open(lock_dir / key, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held[key] = fd
    return True


def free_port(low: int = 20000, high: int = 32000) -> int:
    """A free TCP port on 127.0.0.1, below the ephemeral range (which starts at 32768 here),
    reserved for this process (reserve): tests running at once never pick the same one."""
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(low, high)
        if _port_free(port) and reserve('port', port):
            return port
    raise RuntimeError(f'no free port found in {low}-{high}')


class Sandbox:
    """A temporary root directory holding instances, their logs and config files.

    On exit (normal, exception, KeyboardInterrupt, SIGTERM, interpreter exit) every
    server under the root is stopped (immediate, then SIGKILL) and the root removed,
    unless PGRM_KEEP_TEST_DIR=1.
    """

    def __init__(self, prefix: str = 'pgrm-e2e-'):
        if PG_BINDIR is None:
            raise SkipTest('no PostgreSQL binaries: set PG_BINDIR or install postgresql')
        _install_hooks()
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir='/tmp')).resolve()
        os.chmod(self.root, 0o755)
        if IS_ROOT and _PG_PW:
            os.chown(self.root, _PG_PW.pw_uid, _PG_PW.pw_gid)
        self.instances: dict = {}
        self._cleaned = False
        self._undo: list = []   # what on_cleanup registered, undone last first
        _live_sandboxes.append(self)

    def __enter__(self) -> 'Sandbox':
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and exc_type is not SkipTest:
            self.dump_logs()
        self.cleanup()
        return False

    def __repr__(self):
        return f'Sandbox({str(self.root)!r})'

    # -- paths and files

    def data_dir(self, name: str) -> Path:
        return self.root / name

    def socket_dir(self, name: str) -> Path:
        return self.root / 'sockets' / name

    def log_file(self, name: str) -> Path:
        return self.root / f'{name}.log'

    def path(self, *parts) -> Path:
        return self.root.joinpath(*parts)

    def write_config(self, name: str, text: str) -> Path:
        """Writes root/<name>.conf, readable by all; returns its path."""
        path = self.root / f'{name}.conf'
        path.write_text(text)
        os.chmod(path, 0o644)
        return path

    def on_cleanup(self, undo: Callable[[], None]):
        """Runs undo when the sandbox is cleaned up, after its servers stopped (for things
        outside the sandbox's directory: network namespaces, daemons)."""
        self._undo.append(undo)

    def mkdir_for_pg(self, name: str) -> Path:
        """An (empty) directory under root owned by the PostgreSQL OS user."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        if IS_ROOT and _PG_PW:
            os.chown(path, _PG_PW.pw_uid, _PG_PW.pw_gid)
        os.chmod(path, 0o700)
        return path

    # -- instances

    def new_instance(self, name: str, port: int | None = None) -> Instance:
        """An Instance for data directory root/<name>, which is NOT created: initdb() it,
        or let a clone fill it."""
        if name in self.instances:
            raise ValueError(f'instance {name!r} already exists')
        if '/' in name or name.startswith('.') or name == 'sockets':
            raise ValueError(f'bad instance name {name!r}')
        inst = Instance(name, port or free_port(), self.data_dir(name), self.log_file(name),
                        self.socket_dir(name), sandbox=self)
        self.instances[name] = inst
        return inst

    def dump_logs(self, lines: int = 30, out=None):
        out = out or sys.stderr
        for inst in self.instances.values():
            tail = inst.log_tail(lines)
            if tail:
                out.write(tail)
        out.flush()

    # -- teardown

    def stop_all(self):
        """Stops every server under root: pg_ctl stop -m immediate, then SIGKILL."""
        if PG_BINDIR is not None:
            for inst in self.instances.values():
                if inst.is_running():
                    try:
                        inst.stop(mode='immediate', timeout=20)
                    except Exception:  # noqa: BLE001 - the sweep below handles it
                        pass
        # Any postmaster.pid under root, including data dirs made by clones.
        for pidfile in list(self.root.glob('*/postmaster.pid')) + list(self.root.glob('*/*/postmaster.pid')):
            pid = _read_pidfile(pidfile.parent)
            if pid and _pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + 20
        while True:
            pids = _processes_under(self.root)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if time.monotonic() > deadline:
                sys.stderr.write(f'harness: processes still running under {self.root}: {pids}\n')
                return
            time.sleep(0.1)

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        try:
            self.stop_all()
            for undo in reversed(self._undo):
                try:
                    undo()
                except Exception:  # noqa: BLE001 - undo the rest anyway
                    traceback.print_exc()
        finally:
            if self in _live_sandboxes:
                _live_sandboxes.remove(self)
            if os.environ.get('PGRM_KEEP_TEST_DIR') == '1':
                sys.stderr.write(f'harness: keeping {self.root}\n')
            else:
                shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Clusters: the setup steps the tests and the benchmarks (bench/benchlib.py) share


def pgbench(inst: Instance, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs pgbench -h 127.0.0.1 -p PORT -U postgres ARGS pgbench, as the postgres OS user."""
    return run_as_pg([pg_bin('pgbench'), '-h', '127.0.0.1', '-p', inst.port, '-U', 'postgres',
                      *args, 'pgbench'], timeout=timeout)


def popen_as_pg(argv: list, *, log: Path) -> subprocess.Popen:
    """argv started in the background as the PostgreSQL OS user, in its own session (end
    it with end_process_group), its stdout and stderr appended to log."""
    home = _PG_PW.pw_dir if (IS_ROOT and _PG_PW) else None
    with open(log, 'ab') as out:
        return subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=clean_env(home=home), cwd='/',
                                preexec_fn=_demote_fn(), start_new_session=True)


def pgbench_background(inst: Instance, *args, log: Path) -> subprocess.Popen:
    """pgbench as in pgbench(), started in the background in its own session (end it
    with end_process_group), its output appended to log."""
    return popen_as_pg([pg_bin('pgbench'), '-h', '127.0.0.1', '-p', inst.port, '-U', 'postgres',
                        *args, 'pgbench'], log=log)


# repmgrd


def log_of(conf: Path) -> Path:
    """The log_file a repmgr.conf names (log_file='...', in either format)."""
    m = re.search(r"^log_file='?([^'\n]*)'?$", conf.read_text(), re.M)
    assert m, f'no log_file in {conf}'
    return Path(m.group(1))


class Daemon:
    """repmgrd -f conf --verbose, in the foreground, as a child of this test (own
    process group, so that stop() can end it and anything it started). env: variables
    to add (None removes one); launcher: an argv prefix that execs the daemon (its pid
    stays the daemon's), e.g. a shell exporting its $$ as WATCHDOG_PID."""

    def __init__(self, sb: Sandbox, name: str, conf: Path, *extra, verbose: bool = True,
                 netns: NetNamespace | None = None, env: dict | None = None,
                 launcher: list = ()):
        self.name = name
        self.conf = conf
        self.out = sb.path(f'repmgrd-{name}.out')  # stdout/stderr, before log_file applies
        argv = [str(pgrm_path('repmgrd')), '-f', str(conf)]
        if verbose:
            argv.append('--verbose')
        argv += [str(a) for a in extra]
        argv = [str(a) for a in launcher] + argv
        if netns is not None:
            argv = netns.argv(argv)   # ip netns exec execs it: the pid stays the daemon's
        self.argv = argv
        with open(self.out, 'ab') as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=clean_env(env),
                                         cwd=str(sb.root), start_new_session=True)
        self.pid = self.proc.pid

    def log_text(self) -> str:
        text = ''
        for p in (log_of(self.conf), self.out):
            try:
                text += p.read_text(errors='replace')
            except OSError:
                pass
        return text

    def wait_log(self, pattern: str, timeout: float = 30):
        wait_until(lambda: re.search(pattern, self.log_text()), timeout=timeout,
                   what=f'repmgrd {self.name} to log /{pattern}/')

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5) -> int | None:
        # The daemon and whatever it started (its own process group).
        return end_process_group(self.proc, timeout)

    def tail(self, lines: int = 40) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f'\n--- repmgrd {self.name} (last {len(text)} lines) ---\n' + '\n'.join(text) + '\n'


def make_primary(sb: Sandbox, name: str = 'node1', *, scale: int | None = 1,
                 extra_conf: dict | None = None, timeout: float = 300) -> Instance:
    """A new instance, initdb'd (with extra_conf) and started, with a database pgbench
    filled by pgbench -i -s scale, as the seed's walkthrough does (scale=None: left empty).
    timeout bounds pgbench -i."""
    inst = sb.new_instance(name)
    inst.initdb(extra_conf)
    inst.start()
    inst.psql('create database pgbench')
    if scale is not None:
        pgbench(inst, '-i', '-s', str(scale), '-q', timeout=timeout)
    return inst


def conf_text(node: int, inst: Instance, cluster: str = 'test',
              data_directory: bool = True, **settings) -> str:
    """The seed's key=value repmgr.conf for a node (cluster, node, conninfo to database
    pgbench unless conninfo= says otherwise), its data directory unless
    data_directory=False, then any further settings (node_name='node1',
    failover='automatic', reconnect_attempts=2, ...): strings and paths quoted, numbers
    bare, None left out."""
    conninfo = settings.pop('conninfo', f'host=127.0.0.1 port={inst.port} user=postgres dbname=pgbench')
    text = f"cluster={cluster}\nnode={node}\nconninfo='{conninfo}'\n"
    if data_directory:
        text += f"data_directory='{inst.datadir}'\n"
    for key, value in settings.items():
        if value is None:
            continue
        text += f"{key}='{value}'\n" if isinstance(value, (str, Path)) else f'{key}={value}\n'
    return text


def write_conf(sb: Sandbox, node: int, inst: Instance, cluster: str = 'test',
               name: str | None = None, data_directory: bool = True, **settings) -> Path:
    """Writes conf_text() to the sandbox as <name>.conf (default repmgr<node>.conf);
    returns its path."""
    return sb.write_config(name or f'repmgr{node}',
                           conf_text(node, inst, cluster, data_directory=data_directory, **settings))


def clone_args(target: Path, source: Instance, *extra, after=()) -> list:
    """The seed's clone command line: repmgr -D DIR -d pgbench -p PORT -U postgres
    -R postgres --verbose [extra...] standby clone [after...] 127.0.0.1

    extra: shared options (before the command, as the seed places them); after: the
    command's own options (--method, --dry-run), placed after the command."""
    return ['-D', target, '-d', 'pgbench', '-p', source.port, '-U', 'postgres',
            '-R', 'postgres', '--verbose', *extra, 'standby', 'clone', *after, '127.0.0.1']


# Every row a test commits goes into walk on the primary (see Cluster.write).
WALK_TABLE = 'create table walk(i int primary key)'


def primary_conninfo(inst: Instance) -> str:
    return inst.psql('show primary_conninfo')


class Cluster:
    """The nodes by id, their config files, and every row committed to walk."""

    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.nodes: dict = {}   # id -> Instance
        self.confs: dict = {}   # id -> Path
        self.committed: list = []
        self._next = 1

    def add(self, node_id: int, inst: Instance) -> Path:
        self.nodes[node_id] = inst
        self.confs[node_id] = write_conf(self.sb, node_id, inst)
        return self.confs[node_id]

    def id_of(self, inst: Instance) -> int:
        return next(i for i, n in self.nodes.items() if n is inst)

    def running(self) -> list:
        return [n for n in self.nodes.values() if n.is_running()]

    def writable(self) -> list:
        return [n for n in self.running() if not n.is_in_recovery()]

    def primary(self) -> Instance:
        w = self.writable()
        assert len(w) == 1, f'expected exactly one writable node, found {[n.name for n in w]}'
        return w[0]

    def write(self, count: int = 3, on: Instance | None = None) -> list:
        """Inserts count new rows on the primary (or on); remembers them once committed."""
        target = on or self.primary()
        rows = list(range(self._next, self._next + count))
        self._next += count
        target.psql('insert into walk values ' + ', '.join(f'({r})' for r in rows), db='pgbench')
        self.committed.extend(rows)
        return rows

    def rows(self, inst: Instance) -> list:
        text = inst.psql('select i from walk order by i', db='pgbench')
        return [int(x) for x in text.split()] if text else []

    def metadata(self, inst: Instance | None = None) -> dict:
        """id -> (type, active, upstream) from repmgr_test.repl_nodes."""
        text = (inst or self.primary()).psql(
            "select id, type, active, coalesce(upstream_node_id::text, '') "
            "from repmgr_test.repl_nodes where cluster = 'test' order by id", db='pgbench')
        out = {}
        for line in text.splitlines():
            i, typ, active, up = line.split('|')
            out[int(i)] = (typ, active == 't', int(up) if up else None)
        return out

    def check(self, lagging=()):
        """Exactly one running node is writable; every committed row (and no other) is on
        every running node (the lagging ones excepted: standbys not yet re-pointed); the
        metadata on the primary agrees: the writable node is the one active primary row,
        and every running standby is an active standby row whose upstream is the primary
        (and, unless lagging, it really streams from it)."""
        running = self.running()
        writable = [n for n in running if not n.is_in_recovery()]
        assert len(writable) == 1, (
            f'exactly one writable node expected among {[n.name for n in running]}, '
            f'found {[n.name for n in writable]}')
        primary = writable[0]
        pid = self.id_of(primary)
        want = sorted(self.committed)
        got = self.rows(primary)
        assert got == want, f'{primary.name} (primary) has rows {got}, expected {want}'
        for n in running:
            if n is primary or n in lagging:
                continue
            wait_until(lambda n=n: self.rows(n) == want, timeout=60,
                       what=f'{n.name} to have exactly the committed rows {want}')
            wait_streaming_from(n, primary)
        meta = self.metadata(primary)
        active_primaries = sorted(i for i, (t, a, _) in meta.items() if t == 'primary' and a)
        assert active_primaries == [pid], (
            f'metadata: active primary rows {active_primaries}, but {primary.name} (node {pid}) '
            f'is the writable one: {meta}')
        for n in running:
            if n is primary:
                continue
            i = self.id_of(n)
            assert i in meta, f'metadata: running standby node {i} is not registered: {meta}'
            assert meta[i] == ('standby', True, pid), (
                f'metadata: node {i} is a running standby of node {pid}, but its row is '
                f'{meta[i]} (type, active, upstream): {meta}')
        return primary


def small_cluster(sb: Sandbox, standbys: int = 1, pgbench: bool = False,
                  extra_conf: dict | None = None) -> Cluster:
    """node1 primary (registered, with extra_conf, which its standbys copy) and node2..
    standbys of it (cloned, started, registered)."""
    c = Cluster(sb)
    n1 = make_primary(sb, scale=1 if pgbench else None, extra_conf=extra_conf)
    n1.psql(WALK_TABLE, db='pgbench')
    conf1 = c.add(1, n1)
    pgrm('-f', conf1, 'master', 'register', check=0)
    for i in range(2, 2 + standbys):
        n = sb.new_instance(f'node{i}')
        pgrm(*clone_args(n.datadir, n1), check=0)
        n.start()
        wait_streaming_from(n, n1)
        pgrm('-f', c.add(i, n), 'standby', 'register', check=0)
    c.write(2)
    c.check()
    return c


def receiver(inst: Instance) -> str:
    """'status|sender_port' of the WAL receiver ('' when there is none)."""
    return inst.psql('select status, sender_port from pg_stat_wal_receiver')


def streaming(inst: Instance) -> bool:
    """True when inst's WAL receiver is streaming (from any upstream)."""
    return inst.psql('select status from pg_stat_wal_receiver') == 'streaming'


def wait_streaming(inst: Instance, timeout: float = 60):
    """Waits until inst's WAL receiver streams (from any upstream)."""
    wait_until(lambda: streaming(inst), timeout=timeout, what=f'{inst.name} to stream')


def wait_streaming_from(inst: Instance, upstream: Instance, timeout: float = 60):
    """Waits until inst's WAL receiver streams from upstream's port."""
    wait_until(lambda: receiver(inst) == f'streaming|{upstream.port}', timeout=timeout,
               what=f'{inst.name} to stream from {upstream.name} (port {upstream.port})')


def hold_all_connections(sb: Sandbox, inst: Instance, timeout: float = 60) -> Callable[[], None]:
    """Takes every connection slot of inst, the superuser's reserved ones included:
    psql sessions sleeping in the background, one more until a new connection is refused
    with "too many clients". Returns a function that ends them (the sandbox's cleanup
    does too) and waits until inst lets a client in again."""
    sessions: list = []
    home = _PG_PW.pw_dir if (IS_ROOT and _PG_PW) else None
    argv = [pg_bin('psql'), '-X', '-q', '-h', '127.0.0.1', '-p', str(inst.port), '-U', inst.superuser,
            '-d', 'postgres', '-c', 'select pg_sleep(3600)']
    # A sleeping backend notices its client is gone only when it checks.
    env = clean_env({'PGOPTIONS': '-c client_connection_check_interval=100'}, home=home)

    def full() -> bool:
        probe = run_as_pg([pg_bin('psql'), '-X', '-A', '-t', '-h', '127.0.0.1', '-p', str(inst.port),
                           '-U', inst.superuser, '-d', 'postgres', '-c', 'select 1'], check=False, timeout=30)
        if probe.returncode != 0 and 'too many clients' in probe.stderr:
            return True
        sessions.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         stdin=subprocess.DEVNULL, env=env, cwd='/',
                                         preexec_fn=_demote_fn(), start_new_session=True))
        return False

    def release():
        for proc in sessions:
            end_process_group(proc, term_timeout=None)
        sessions.clear()

    sb.on_cleanup(release)
    wait_until(full, timeout=timeout, interval=0.1, what=f'every connection slot of {inst.name} taken')

    def release_and_wait():
        release()
        wait_until(inst.accepts_connections, timeout=timeout, what=f'{inst.name} to let clients in again')
    return release_and_wait


def assert_read_only(inst: Instance, sql: str = 'insert into walk values (-999999)',
                     db: str = 'pgbench'):
    """Asserts that the write sql fails on inst as a read-only transaction."""
    try:
        inst.psql(sql, db=db)
    except PsqlError as e:
        assert 'read-only transaction' in e.stderr, e.stderr
    else:
        raise AssertionError(f'{inst.name} accepted a write')


# --------------------------------------------------------------------------------------
# Daemons: a repmgrd on every node of a cluster, load, and the guards the daemon,
# rejoin and switchover tests share


DAEMON_FAST = {'monitor_interval_secs': 1, 'reconnect_attempts': 2, 'reconnect_interval': 1}


def writable(inst: Instance) -> bool:
    """True when inst answers and is out of recovery and not read-only by default."""
    try:
        return inst.psql("select not pg_is_in_recovery() and "
                         "current_setting('default_transaction_read_only') = 'off'",
                         timeout=5) == 't'
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False


def in_recovery(inst: Instance) -> bool:
    return inst.psql('select pg_is_in_recovery()', timeout=10) == 't'


def daemon_settings(node: int, sb: Sandbox, **settings) -> dict:
    """A daemon's settings on top of conf_text's: its node name, its log file in
    the sandbox, failover = automatic and the fast timings; any given win (None drops one)."""
    return {'node_name': f'node{node}', 'log_file': sb.path(f'repmgrd{node}.log'),
            'failover': 'automatic', **DAEMON_FAST, **settings}


def daemon_conf_text(node: int, inst: Instance, sb: Sandbox, **settings) -> str:
    return conf_text(node, inst, **daemon_settings(node, sb, **settings))


def write_daemon_conf(sb: Sandbox, node: int, inst: Instance, **settings) -> Path:
    return write_conf(sb, node, inst, **daemon_settings(node, sb, **settings))


class DaemonCluster:
    """Nodes with a repmgrd each, and background load."""

    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.nodes: dict = {}   # id -> Instance
        self.confs: dict = {}   # id -> Path
        self.daemons: dict = {}  # id -> Daemon
        self.bg: list = []      # other background processes (pgbench)

    def start_daemon(self, node_id: int, *extra, netns: NetNamespace | None = None,
                     env: dict | None = None, launcher: list = ()) -> Daemon:
        d = Daemon(self.sb, f'node{node_id}', self.confs[node_id], *extra, netns=netns,
                   env=env, launcher=launcher)
        self.daemons[node_id] = d
        return d

    def nodes_sql(self, inst: Instance | None = None) -> str:
        inst = inst or self.nodes[1]
        return inst.psql("select id, type, active from repmgr_test.repl_nodes order by id",
                         db='pgbench')

    def close(self):
        for p in self.bg:
            if p.poll() is None:
                end_process_group(p, term_timeout=None)
        for d in self.daemons.values():
            d.stop()

    def dump(self):
        for d in self.daemons.values():
            sys.stderr.write(d.tail())
        sys.stderr.flush()


class daemon_cluster:
    """with daemon_cluster(sb) as c: ... — daemons and load always stopped, logs on failure."""

    def __init__(self, sb):
        self.c = DaemonCluster(sb)

    def __enter__(self) -> DaemonCluster:
        return self.c

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and exc_type is not SkipTest:
            self.c.dump()
        self.c.close()
        return False


def setup_three(c: DaemonCluster, node_settings: dict | None = None, sync: bool = False,
                daemons=(1, 2, 3), extra_conf: dict | None = None):
    """node1 primary (with extra_conf, which its standbys copy) with pgbench -i -s 1,
    master registered; node2 and node3 cloned with `repmgr -f confN ... standby clone`
    (application_name = node name), started and streaming; node3 registered by hand, node2
    left to its daemon. Then the daemons (each with its node's settings), waiting until
    node2 is registered and both standbys recorded a monitoring row."""
    sb = c.sb
    node_settings = node_settings or {}
    n1 = make_primary(sb, extra_conf=extra_conf)
    c.nodes[1] = n1
    c.confs[1] = write_daemon_conf(sb, 1, n1, **node_settings.get(1, {}))
    pgrm('-f', c.confs[1], 'master', 'register', check=0)
    for i in (2, 3):
        n = sb.new_instance(f'node{i}')
        c.nodes[i] = n
        c.confs[i] = write_daemon_conf(sb, i, n, **node_settings.get(i, {}))
        pgrm('-f', c.confs[i], *clone_args(n.datadir, n1), check=0)
        n.start()
    for i in (2, 3):
        wait_streaming_from(c.nodes[i], n1)
    wait_until(lambda: n1.psql("select application_name from pg_stat_replication "
                               "where state = 'streaming' order by 1") == 'node2\nnode3',
               what='node1 streaming to node2 and node3 under their node names')
    pgrm('-f', c.confs[3], 'standby', 'register', check=0)
    if sync:
        n1.psql("alter system set synchronous_standby_names = 'ANY 1 (node2, node3)'")
        n1.psql("alter system set synchronous_commit = on")
        n1.psql('select pg_reload_conf()')
        wait_until(lambda: n1.psql("select application_name, sync_state from pg_stat_replication "
                                   "order by 1") == 'node2|quorum\nnode3|quorum',
                   what='node2 and node3 as quorum synchronous standbys')
    for i in daemons:
        c.start_daemon(i)
    if 2 in daemons:
        wait_until(lambda: c.nodes_sql() == '1|primary|t\n2|standby|t\n3|standby|t',
                   timeout=30, what="node2's daemon to register node2")
    standbys = [i for i in (2, 3) if i in daemons]
    if standbys:
        want = '\n'.join(str(i) for i in standbys)
        wait_until(lambda: n1.psql('select distinct standby_node from repmgr_test.repl_monitor '
                                   'order by 1', db='pgbench') == want,
                   timeout=30, what=f'monitoring rows of standbys {standbys}')
    if 1 in daemons:
        c.daemons[1].wait_log('this node is the primary')


def setup_partitioned(c: DaemonCluster, host: 'NetNamespace | None' = None,
                      node_settings: dict | None = None) -> 'NetNamespace':
    """node1, the primary, on another host (a network namespace, returned: host.link(False)
    cuts it off) with database pgbench and a table t, master registered; node2 and node3
    cloned from it over the link, started, streaming and registered. Then the daemons
    (node1's inside the namespace, the others with harness.DAEMON_FAST like it), waiting
    until both standbys recorded a monitoring row and node1's daemon runs as the primary.
    node1's repmgrd socket is in the namespace: ask it with pgrm(..., netns=host). host: a
    namespace made beforehand (to run something else on its link's address first);
    node_settings: {node id: settings} added to that node's daemon settings."""
    sb = c.sb
    host = host or NetNamespace(sb)
    node_settings = node_settings or {}
    here = host.local   # node2's and node3's address, as node1 reaches them
    n1 = sb.new_instance('node1')
    n1.netns = host
    n1.initdb({'listen_addresses': f'127.0.0.1,{host.remote}'})
    host.trust(n1)   # the clones copy its pg_hba.conf
    n1.start()
    n1.psql('create database pgbench')
    n1.psql('create table t(x int)', db='pgbench')
    c.nodes[1] = n1
    c.confs[1] = write_daemon_conf(sb, 1, n1, conninfo=f'host={host.remote} port={n1.port} '
                                                'user=postgres dbname=pgbench', **node_settings.get(1, {}))
    pgrm('-f', c.confs[1], 'master', 'register', check=0)
    for i in (2, 3):
        n = sb.new_instance(f'node{i}')
        c.nodes[i] = n
        c.confs[i] = write_daemon_conf(sb, i, n, conninfo=f'host={here} port={n.port} '
                                                   'user=postgres dbname=pgbench', **node_settings.get(i, {}))
        pgrm('-f', c.confs[i], '-D', n.datadir, '-d', 'pgbench', '-p', n1.port, '-U', 'postgres',
             'standby', 'clone', host.remote, check=0)
        n.append_conf({'listen_addresses': f'127.0.0.1,{here}'})
        n.start()
        wait_streaming(n)
        pgrm('-f', c.confs[i], 'standby', 'register', check=0)
    c.start_daemon(1, netns=host)
    c.start_daemon(2)
    c.start_daemon(3)
    c.daemons[1].wait_log('this node is the primary')
    wait_until(lambda: n1.psql('select count(distinct standby_node) from repmgr_test.repl_monitor',
                               db='pgbench') == '2', timeout=30, what='monitoring rows of both standbys')
    return host


def pgbench_load(c: DaemonCluster, inst: Instance, *args) -> subprocess.Popen:
    """pgbench ... pgbench as the postgres user, in the background (killed on close)."""
    p = pgbench_background(inst, *args, log=c.sb.path('pgbench.out'))
    c.bg.append(p)
    return p


class AckWriter(threading.Thread):
    """INSERT INTO acks VALUES (i), i = 1, 2, ... against one server; records every i whose
    INSERT returned success (with synchronous_commit = on and a quorum of synchronous
    standbys, an acknowledged commit is flushed on a standby), and when. Given more
    servers, a failed INSERT moves on to the next one (a standby refuses it as read-only),
    so the writer follows the primary across a switchover."""

    def __init__(self, inst: Instance, *others: Instance):
        super().__init__(daemon=True)
        self.targets = [inst, *others]
        self.acked: list = []
        self.acked_at: list = []   # time.monotonic() of each acknowledgement
        self.failed = 0
        self.stop_event = threading.Event()

    def run(self):
        i = 0
        at = 0
        while not self.stop_event.is_set():
            i += 1
            try:
                self.targets[at].psql(f'insert into acks values ({i})', db='pgbench', timeout=10)
                self.acked.append(i)
                self.acked_at.append(time.monotonic())
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                self.failed += 1
                at = (at + 1) % len(self.targets)
                if at == 0:
                    time.sleep(0.02)

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time between two acknowledgements (or since, or until) within
        [since, until]: how long writes were refused."""
        times = [since] + [t for t in self.acked_at if since < t < until] + [until]
        return max(b - a for a, b in zip(times, times[1:]))

    def stop(self):
        self.stop_event.set()
        self.join(15)


class TwoPrimaries:
    """Samples the standbys in the background and records any moment at which more than
    one node accepts writes."""

    def __init__(self, nodes: list):
        self.nodes = nodes
        self.violations: list = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            w = [n.name for n in self.nodes if writable(n)]
            if len(w) > 1:
                self.violations.append((time.monotonic(), w))
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(10)
        return False


def one_promoted(c: DaemonCluster, candidates=(2, 3)) -> int:
    """Node id of the only candidate accepting writes, else 0."""
    w = [i for i in candidates if writable(c.nodes[i])]
    return w[0] if len(w) == 1 else 0


# --------------------------------------------------------------------------------------
# etcd (dcs = etcd): a cluster of members on loopback ports (or on a Bridge's hosts), and TLS


class Certificates:
    """A test certificate authority and what it signed, made with openssl in the sandbox
    (EC P-256 keys, valid one day): ca (ca.crt), a server certificate for addresses
    (server.crt, server.key: subjectAltName IP:<each>; for client authentication too, as
    etcd's JSON gateway presents it to etcd itself), a client certificate (client.crt,
    client.key) without a common name: with authentication on, etcd 3.4's gateway refuses
    a client certificate that has one (HTTP 400); and other_ca.crt, a second authority
    that signed nothing here (a wrong etcd_cacert). Paths are attributes named after the
    files."""

    def __init__(self, sb: Sandbox, addresses: Iterable[str]):
        if shutil.which('openssl') is None:
            raise SkipTest('no openssl')
        d = sb.path('tls')
        d.mkdir(exist_ok=True)
        self.ca, self.ca_key = d / 'ca.crt', d / 'ca.key'
        self.other_ca = d / 'other_ca.crt'
        self.server, self.server_key = d / 'server.crt', d / 'server.key'
        self.client, self.client_key = d / 'client.crt', d / 'client.key'
        key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

        def openssl(*argv):
            subprocess.run(['openssl', *[str(a) for a in argv]], check=True, capture_output=True, timeout=60)
        openssl('req', '-x509', *key, '-keyout', self.ca_key, '-out', self.ca, '-days', 1,
                '-subj', '/CN=pgrm test CA')
        openssl('req', '-x509', *key, '-keyout', d / 'other_ca.key', '-out', self.other_ca, '-days', 1,
                '-subj', '/CN=pgrm test CA')   # the same name, another key: only the signature tells
        for crt, k, cn, ext in ((self.server, self.server_key, 'etcd',
                                 'subjectAltName=' + ','.join(f'IP:{a}' for a in addresses) +
                                 '\nextendedKeyUsage=serverAuth,clientAuth\n'),
                                (self.client, self.client_key, None, 'extendedKeyUsage=clientAuth\n')):
            csr, extfile = crt.with_suffix('.csr'), crt.with_suffix('.ext')
            extfile.write_text(ext)
            openssl('req', '-new', *key, '-keyout', k, '-out', csr, '-subj', f'/CN={cn}' if cn else '/O=pgrm')
            openssl('x509', '-req', '-in', csr, '-CA', self.ca, '-CAkey', self.ca_key, '-CAcreateserial',
                    '-out', crt, '-days', 1, '-extfile', extfile)


class EtcdCluster:
    """count etcd members (Debian's etcd-server) on address (default 127.0.0.1; the local
    end of a NetNamespace's link, for a node on the other host), their client and peer
    ports from free_port (reserved across the test processes like the servers'), their
    data and logs in the sandbox. hosts: [(Namespace, address)], one per member, instead:
    each member runs in its own namespace on its own address (a Bridge's hosts, so that a
    fault can cut a node off from some members). tls (Certificates): clients reach the
    members over https only, with a certificate its authority signed (--client-cert-auth);
    the harness's own requests present the client certificate. Each runs in its own
    session with its data directory as cwd, so the sandbox's sweep ends any left running.
    endpoints is etcd_endpoints' value."""

    BINARY = '/usr/bin/etcd'

    def __init__(self, sb: Sandbox, count: int = 3, address: str = '127.0.0.1', hosts: list | None = None,
                 tls: Certificates | None = None):
        if not os.access(self.BINARY, os.X_OK):
            raise SkipTest(f'no {self.BINARY} (apt-get install etcd-server)')
        self.sb = sb
        hosts = hosts or [(None, address)] * count
        self.names = [f'etcd{i}' for i in range(1, len(hosts) + 1)]
        self.netns = {n: h for n, (h, _) in zip(self.names, hosts)}
        self.address = {n: a for n, (_, a) in zip(self.names, hosts)}
        self.client = {n: free_port() for n in self.names}
        self.peer = {n: free_port() for n in self.names}
        self.procs: dict = {}
        self.tls = tls
        self.scheme = 'https' if tls else 'http'
        self.endpoints = ','.join(f'{self.scheme}://{self.address[n]}:{self.client[n]}' for n in self.names)
        self.root_password: str | None = None   # enable_auth's: the harness's own requests
        self.tokens: dict = {}                  # member -> its auth token
        sb.on_cleanup(self.stop_all)
        for n in self.names:
            self.start(n)
        wait_until(self.healthy, timeout=60, what='the etcd cluster to elect a leader')

    def start(self, name: str):
        """Starts (or restarts, with its data) one member."""
        data = self.sb.path(name)
        data.mkdir(exist_ok=True)
        a = self.address[name]
        cluster = ','.join(f'{n}=http://{self.address[n]}:{self.peer[n]}' for n in self.names)
        argv = [self.BINARY, '--name', name, '--data-dir', str(data / 'data'),
                '--listen-client-urls', f'{self.scheme}://{a}:{self.client[name]}',
                '--advertise-client-urls', f'{self.scheme}://{a}:{self.client[name]}',
                '--listen-peer-urls', f'http://{a}:{self.peer[name]}',
                '--initial-advertise-peer-urls', f'http://{a}:{self.peer[name]}',
                '--initial-cluster', cluster, '--initial-cluster-state', 'new',
                '--initial-cluster-token', f'pgrm-{self.sb.root.name}']
        if self.tls:
            argv += ['--cert-file', str(self.tls.server), '--key-file', str(self.tls.server_key),
                     '--client-cert-auth', '--trusted-ca-file', str(self.tls.ca)]
        if self.netns[name] is not None:
            argv = self.netns[name].argv(argv)   # ip netns exec execs it: the pid stays etcd's
        with open(self.sb.path(f'{name}.log'), 'ab') as out:
            self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=clean_env(), cwd=str(data),
                                                start_new_session=True)

    def enable_auth(self, user: str, password: str, prefix: str):
        """etcd's authentication on (etcdctl): a root user, and user with read-write on the
        keys under prefix alone. The harness's own requests go as root from then on."""
        root_password = 'root-' + ''.join(random.SystemRandom().choices('abcdefghijklmnop', k=16))

        tls = ['--cacert', str(self.tls.ca), '--cert', str(self.tls.client), '--key', str(self.tls.client_key)] \
            if self.tls else []

        def ctl(*args):
            subprocess.run(['/usr/bin/etcdctl', '--endpoints', self.endpoints, *tls, *args], check=True,
                           capture_output=True, timeout=30, env=clean_env({'ETCDCTL_API': '3'}))
        ctl('user', 'add', f'root:{root_password}', '--interactive=false')
        ctl('user', 'grant-role', 'root', 'root')
        ctl('role', 'add', user)
        ctl('role', 'grant-permission', user, '--prefix=true', 'readwrite', prefix)
        ctl('user', 'add', f'{user}:{password}', '--interactive=false')
        ctl('user', 'grant-role', user, user)
        ctl('auth', 'enable')
        self.root_password = root_password

    def kill(self, name: str):
        """SIGKILL to one member (and its process group)."""
        end_process_group(self.procs[name], term_timeout=None)

    def stop_all(self):
        for name, p in self.procs.items():
            if p.poll() is None:
                end_process_group(p, term_timeout=None)

    def request(self, name: str, path: str, body: dict, timeout: float = 2) -> dict:
        """One call to a member's JSON gateway (as root once enable_auth ran)."""
        headers = {'Content-Type': 'application/json'}
        if self.root_password is not None and path != '/v3/auth/authenticate':
            # A token per member, kept (etcd checks a password with bcrypt: slow).
            if name not in self.tokens:
                self.tokens[name] = self.request(name, '/v3/auth/authenticate',
                                                 {'name': 'root', 'password': self.root_password}, timeout)['token']
            headers['Authorization'] = self.tokens[name]
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            context.load_cert_chain(self.tls.client, self.tls.client_key)
            conn = http.client.HTTPSConnection(self.address[name], self.client[name], timeout=timeout,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(self.address[name], self.client[name], timeout=timeout)
        try:
            conn.request('POST', path, json.dumps(body), headers)
            answer = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if answer.get('code') == 16:   # Unauthenticated: the token expired, or the member restarted
            self.tokens.pop(name, None)
        return answer

    def healthy(self) -> bool:
        """A linearizable read answered by every running member (so: with a leader)."""
        running = [n for n in self.names if self.procs[n].poll() is None]
        return bool(running) and all('header' in self.request(n, '/v3/kv/range', {'key': 'aA=='})
                                     for n in running)

    def get(self, key: str) -> str | None:
        """key's value (a linearizable read, from the first member that answers), None
        when absent."""
        last = None
        for n in self.names:
            if self.procs[n].poll() is not None:
                continue
            try:
                answer = self.request(n, '/v3/kv/range', {'key': base64.b64encode(key.encode()).decode()})
            except OSError as e:
                last = e
                continue
            if 'header' not in answer:
                last = answer
                continue
            kvs = answer.get('kvs', [])
            return base64.b64decode(kvs[0].get('value', '')).decode() if kvs else None
        raise AssertionError(f'no etcd member answered: {last}')


# --------------------------------------------------------------------------------------
# Other hosts: a network namespace joined by a veth pair, and an sshd (root only)


_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


class Namespace:
    """A network namespace by name: argv() runs a program in it, enter() moves the calling
    process into it (for a preexec_fn). Instance.netns and Daemon(netns=) take one."""

    name: str

    def argv(self, argv: list) -> list:
        return ['ip', 'netns', 'exec', self.name, *[str(a) for a in argv]]

    def enter(self):
        fd = os.open(f'/var/run/netns/{self.name}', os.O_RDONLY)
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f'setns {self.name}: {os.strerror(err)}')
        finally:
            os.close(fd)


def _net_tag() -> str:
    """A tag unique to this process and call, short enough for interface names (15 chars)."""
    return f'{os.getpid() % 100000}{random.randint(0, 99):02d}'


class NetNamespace(Namespace):
    """A network namespace linked to this one by a veth pair: a second host. This side
    gets address `local`, the namespace `remote` (a /30 in 10.231.0.0/16). The same
    filesystem, its own interfaces: pgrm run inside it (argv()) sees `local` as a
    remote host. Removed with the sandbox."""

    def __init__(self, sb: Sandbox):
        if not IS_ROOT:
            raise SkipTest('network namespaces need root')
        tag = _net_tag()
        self.name = f'pgrm-{tag}'
        self.veth = f'pgrm{tag}'
        subnet = random.SystemRandom().randint(0, 16383)
        while not reserve('subnet', subnet):
            subnet = random.SystemRandom().randint(0, 16383)
        base = f'10.231.{subnet // 64}.{(subnet % 64) * 4}'
        prefix, last = base.rsplit('.', 1)
        self.local, self.remote = f'{prefix}.{int(last) + 1}', f'{prefix}.{int(last) + 2}'
        sb.on_cleanup(self.remove)
        for argv in (['ip', 'netns', 'add', self.name],
                     ['ip', 'link', 'add', self.veth + 'a', 'type', 'veth', 'peer', 'name', self.veth + 'b'],
                     ['ip', 'link', 'set', self.veth + 'b', 'netns', self.name],
                     ['ip', 'addr', 'add', self.local + '/30', 'dev', self.veth + 'a'],
                     ['ip', 'link', 'set', self.veth + 'a', 'up'],
                     self.argv(['ip', 'addr', 'add', self.remote + '/30', 'dev', self.veth + 'b']),
                     self.argv(['ip', 'link', 'set', self.veth + 'b', 'up']),
                     self.argv(['ip', 'link', 'set', 'lo', 'up'])):
            subprocess.run(argv, check=True, capture_output=True, timeout=30)

    def trust(self, inst: 'Instance'):
        """Lets both ends of the link into inst (any database, and replication) without a
        password: appended to its pg_hba.conf, read at the next start or reload."""
        hba = inst.datadir / 'pg_hba.conf'
        hba.write_text(hba.read_text() + ''.join(f'host {db} all {a}/32 trust\n'
                                                 for a in (self.local, self.remote)
                                                 for db in ('all', 'replication')))

    def link(self, up: bool):
        """Cuts (up=False) or restores the link between the two hosts."""
        subprocess.run(['ip', 'link', 'set', self.veth + 'a', 'up' if up else 'down'],
                       check=True, capture_output=True, timeout=30)

    def remove(self):
        subprocess.run(['ip', 'link', 'del', self.veth + 'a'], capture_output=True, timeout=30)
        subprocess.run(['ip', 'netns', 'del', self.name], capture_output=True, timeout=30)


class Bridge:
    """Hosts on one Linux bridge, as on one switch: `count` network namespaces (hosts[0..]),
    each joined to the bridge by a veth pair and given its own address (addresses[i]) in a
    /24 of 10.232.0.0/16. This namespace, the client's, has the bridge's address (`local`)
    and reaches every host through it. link(i, up) takes host i's cable out or puts it
    back (it then reaches no one, and no one it); block(i, others) makes host i drop every
    packet to and from those hosts (nftables inside i), unblock(i) lifts that, so a
    partition can leave some paths up. Removed with the sandbox."""

    def __init__(self, sb: Sandbox, count: int):
        if not IS_ROOT:
            raise SkipTest('network namespaces need root')
        if shutil.which('nft') is None:
            raise SkipTest('no nft (the nftables package; scripts/setup installs it)')
        tag = _net_tag()
        self.name = f'pgrb{tag}'
        subnet = random.SystemRandom().randint(0, 255)
        while not reserve('bridge-subnet', subnet):
            subnet = random.SystemRandom().randint(0, 255)
        self.local = f'10.232.{subnet}.1'
        self.hosts: list = []
        self.addresses: list = []
        self._veths: list = []
        sb.on_cleanup(self.remove)
        self._run(['ip', 'link', 'add', self.name, 'type', 'bridge'],
                  ['ip', 'addr', 'add', self.local + '/24', 'dev', self.name],
                  ['ip', 'link', 'set', self.name, 'up'])
        for i in range(count):
            host = Namespace()
            host.name = f'pgrm-{tag}-{i}'
            veth, address = f'pgrh{tag}{i}', f'10.232.{subnet}.{10 + i}'
            self.hosts.append(host)
            self._veths.append(veth)
            self.addresses.append(address)
            self._run(['ip', 'netns', 'add', host.name],
                      ['ip', 'link', 'add', veth + 'a', 'type', 'veth', 'peer', 'name', veth + 'b'],
                      ['ip', 'link', 'set', veth + 'b', 'netns', host.name],
                      ['ip', 'link', 'set', veth + 'a', 'master', self.name],
                      ['ip', 'link', 'set', veth + 'a', 'up'],
                      host.argv(['ip', 'addr', 'add', address + '/24', 'dev', veth + 'b']),
                      host.argv(['ip', 'link', 'set', veth + 'b', 'up']),
                      host.argv(['ip', 'link', 'set', 'lo', 'up']),
                      host.argv(['nft', 'add table inet pgrm; '
                                 'add chain inet pgrm input { type filter hook input priority 0; }; '
                                 'add chain inet pgrm output { type filter hook output priority 0; }']))

    @staticmethod
    def _run(*argvs):
        for argv in argvs:
            subprocess.run(argv, check=True, capture_output=True, timeout=30)

    def trust(self, inst: 'Instance'):
        """Lets every host and the client into inst (any database, and replication)
        without a password: appended to its pg_hba.conf, read at the next start or reload."""
        net = self.local.rsplit('.', 1)[0] + '.0/24'
        hba = inst.datadir / 'pg_hba.conf'
        hba.write_text(hba.read_text() + ''.join(f'host {db} all {net} trust\n'
                                                 for db in ('all', 'replication')))

    def link(self, i: int, up: bool):
        self._run(['ip', 'link', 'set', self._veths[i] + 'a', 'up' if up else 'down'])

    def block(self, i: int, others: Iterable[int]):
        addrs = ', '.join(self.addresses[j] for j in others)
        self._run(self.hosts[i].argv(['nft', f'add rule inet pgrm input ip saddr {{ {addrs} }} drop; '
                                             f'add rule inet pgrm output ip daddr {{ {addrs} }} drop']))

    def unblock(self, i: int):
        self._run(self.hosts[i].argv(['nft', 'flush chain inet pgrm input; flush chain inet pgrm output']))

    def remove(self):
        for veth in self._veths:
            subprocess.run(['ip', 'link', 'del', veth + 'a'], capture_output=True, timeout=30)
        for host in self.hosts:
            subprocess.run(['ip', 'netns', 'del', host.name], capture_output=True, timeout=30)
        subprocess.run(['ip', 'link', 'del', self.name], capture_output=True, timeout=30)


class SqlLinkProxy:
    """A TCP proxy in front of a server, on its own loopback port: register the server
    (and clone its standbys) at this port, so that daemons and WAL receivers both reach
    it through here. cut_sql() then cuts every connection but replication ones, as a
    link lost for SQL alone would: open sessions are closed, new ones get no answer
    (the client times out), while WAL keeps streaming. Stopped with the sandbox."""

    _SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104

    def __init__(self, sb: Sandbox, upstream: Instance):
        self.upstream_port = int(upstream.port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(('127.0.0.1', 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._sql: list = []     # (client, server) sockets of SQL sessions
        sb.on_cleanup(self.stop)
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_sql(self):
        self._cut.set()
        with self._lock:
            sessions, self._sql = self._sql, []
        for pair in sessions:
            for sock in pair:
                self._close(sock)

    def stop(self):
        self._stopped.set()
        self._close(self._listener)
        with self._lock:
            for pair in self._sql:
                for sock in pair:
                    self._close(sock)

    @staticmethod
    def _close(sock):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    @staticmethod
    def _read(sock, n: int) -> bytes:
        data = b''
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError('closed')
            data += chunk
        return data

    def _accept(self):
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            # The startup packet, after declining SSL or GSS encryption.
            while True:
                head = self._read(client, 8)
                length, code = int.from_bytes(head[:4], 'big'), int.from_bytes(head[4:], 'big')
                if code in (self._SSL_REQUEST, self._GSSENC_REQUEST):
                    client.sendall(b'N')
                    continue
                body = self._read(client, length - 8)
                break
            fields = body.split(b'\0')
            options = dict(zip(fields[0::2], fields[1::2]))
            replication = options.get(b'replication', b'false').lower() not in (b'false', b'off', b'0', b'no')
            if self._cut.is_set() and not replication:
                self._stopped.wait()   # no answer: the client gives up on its own
                self._close(client)
                return
            server = socket.create_connection(('127.0.0.1', self.upstream_port))
            server.sendall(head + body)
        except OSError:
            self._close(client)
            return
        if not replication:
            with self._lock:
                self._sql.append((client, server))
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            self._close(sock)


class Sshd:
    """An sshd of its own on address:port, letting the PostgreSQL OS user in with a key
    made for it. ssh_options() is what a client (run as that user) needs: the port, the
    key and a known_hosts file holding this server's key, so nothing in anyone's ~/.ssh
    is read or written. log() is sshd's log. Stopped with the sandbox."""

    def __init__(self, sb: Sandbox, address: str):
        if not IS_ROOT or _PG_PW is None:
            raise SkipTest('an sshd of its own needs root and a postgres OS user')
        sshd = shutil.which('sshd') or '/usr/sbin/sshd'
        if not Path(sshd).is_file():
            raise SkipTest('no sshd (openssh-server) installed')
        self.dir = sb.path('ssh')
        self.dir.mkdir(mode=0o755)
        host_key, self.client_key = self.dir / 'host_key', self.dir / 'client_key'
        for key in (host_key, self.client_key):
            subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(key)],
                           check=True, capture_output=True, timeout=60)
        os.chown(self.client_key, _PG_PW.pw_uid, _PG_PW.pw_gid)   # ssh insists on 0600, owned
        (self.dir / 'authorized_keys').write_text((self.dir / 'client_key.pub').read_text())
        self.port = free_port()
        self.address = address
        self.known_hosts = self.dir / 'known_hosts'
        self.known_hosts.write_text(f'[{address}]:{self.port} '
                                    + (self.dir / 'host_key.pub').read_text())
        config = self.dir / 'sshd_config'
        config.write_text(f'ListenAddress {address}:{self.port}\n'
                          f'HostKey {host_key}\n'
                          f'PidFile {self.dir / "sshd.pid"}\n'
                          f'AuthorizedKeysFile {self.dir / "authorized_keys"}\n'
                          'StrictModes no\nUsePAM yes\nPasswordAuthentication no\n'
                          'KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n'
                          f'AllowUsers {_PG_PW.pw_name}\nLogLevel VERBOSE\n')
        Path('/run/sshd').mkdir(mode=0o755, exist_ok=True)   # sshd's privilege separation
        self.log_path = self.dir / 'sshd.log'
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen([sshd, '-D', '-e', '-f', str(config)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        sb.on_cleanup(self.stop)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f'sshd exited ({self.proc.returncode}): {self.log()}')
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex((address, self.port)) == 0
        wait_until(listening, timeout=20, what=f'sshd on {address}:{self.port}')

    def ssh_options(self) -> str:
        return (f'-p {self.port} -i {self.client_key} -o UserKnownHostsFile={self.known_hosts} '
                f'-o StrictHostKeyChecking=yes')

    def log(self) -> str:
        return self.log_path.read_text(errors='replace')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# --------------------------------------------------------------------------------------
# Runner


def _test_functions(namespace: dict) -> list:
    module = namespace.get('__name__')
    return [(name, fn) for name, fn in namespace.items()
            if name.startswith('test_') and callable(fn)
            and getattr(fn, '__module__', module) == module]


def main(namespace: dict, needs_pg: bool = True, argv: Iterable[str] | None = None) -> int:
    """Runs every test_* function of namespace (a module's globals()) in file order.

    Prints `ok - name (1.2s)`, `FAIL - name` with the traceback, or `skip - name: why`.
    Returns 0 if all passed, 1 if any failed, 77 (meson's skip code) if PostgreSQL is
    needed but missing or every test skipped. Command-line arguments select tests by name.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    tests = _test_functions(namespace)
    if argv:
        unknown = [a for a in argv if a not in dict(tests)]
        if unknown:
            print(f'no such test: {", ".join(unknown)}', file=sys.stderr)
            return 2
        tests = [(n, f) for n, f in tests if n in argv]
    if needs_pg:
        if PG_BINDIR is None:
            print('skip: no PostgreSQL binaries found (set PG_BINDIR, or install '
                  'postgresql so /usr/lib/postgresql/*/bin/pg_ctl exists)', flush=True)
            return 77
        missing = [b for b in ('initdb', 'pg_ctl', 'postgres', 'psql')
                   if not (PG_BINDIR / b).is_file()]
        if missing:
            print(f'skip: {PG_BINDIR} lacks {", ".join(missing)}', flush=True)
            return 77
        if IS_ROOT and _PG_PW is None:
            print('skip: running as root but there is no "postgres" OS user', flush=True)
            return 77
    failed, skipped = [], 0
    print(f'1..{len(tests)}', flush=True)
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except SkipTest as e:
            skipped += 1
            print(f'skip - {name}: {e}', flush=True)
            continue
        except KeyboardInterrupt:
            print(f'FAIL - {name} (interrupted)', flush=True)
            _cleanup_all()
            raise
        except BaseException:  # noqa: BLE001 - report every failure, incl. SystemExit
            failed.append(name)
            print(f'FAIL - {name} ({time.monotonic() - t0:.1f}s)', flush=True)
            print(''.join('    ' + line for line in traceback.format_exc().splitlines(True)),
                  flush=True)
            continue
        print(f'ok - {name} ({time.monotonic() - t0:.1f}s)', flush=True)
    _cleanup_all()
    if failed:
        print(f'# {len(failed)} of {len(tests)} failed: {", ".join(failed)}', flush=True)
        return 1
    if tests and skipped == len(tests):
        return 77
    print(f'# all {len(tests) - skipped} passed' + (f', {skipped} skipped' if skipped else ''),
          flush=True)
    return 0
