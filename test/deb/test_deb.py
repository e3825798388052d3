#!/usr/bin/env python3
"""The Debian package, as a user gets it: scripts/deb builds it (dpkg-buildpackage -b,
debian/), lintian finds neither error nor warning, and apt-get installs and purges it,
alone and beside Debian's own repmgr (postgresql-15-repmgr, whose repmgr-common owns
/usr/bin/repmgr), in both orders.

Installed, it runs: repmgr --version and repmgrd --help (the personas in
/usr/lib/pgrm/bin, first on PATH as README.Debian says), man repmgr and man pgrm,
systemd-analyze verify accepts repmgrd@15-main.service, logrotate accepts its file and
rotates a log in /var/log/pgrm with it, and no installed file holds the path of the tree
it was built in. Purged, nothing of it is left: no file it shipped, no file by its name
under /etc, /usr, /var/lib, /var/log and /run (PostgreSQL's cluster directories and
/run/netns aside: other tests make clusters and network namespaces named pgrm* meanwhile); the logs in /var/log/pgrm go with it.
Debian's repmgr keeps working and its files stay intact (dpkg --verify) throughout.

Needs root (apt-get, dpkg) and dpkg-buildpackage: else skipped (77). The machine is
left as found: pgrm not installed, postgresql-15-repmgr installed or not as before (its
.deb comes from apt's cache, else the archive).

Building the package compiles pgrm again (without the unit and CLI tests, which this
suite runs anyway: nocheck): most of this test's time.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'e2e'))
import harness  # noqa: E402

SOURCE = Path(os.environ.get('PGRM_SOURCE_DIR', Path(__file__).resolve().parents[2]))
PERSONAS = Path('/usr/lib/pgrm/bin')
DEBIAN_REPMGR = ['postgresql-15-repmgr', 'repmgr-common']
# Where a file by pgrm's name could be left behind.
TREES = ['/etc', '/usr', '/var/lib', '/var/log', '/run']
# Where other tests make things named pgrm* while this one runs, and the package never
# writes: PostgreSQL's clusters (pg_createcluster's directories) and the network
# namespaces of the multi-host tests (ip netns: /run/netns/pgrm-<pid>-<n>).
OTHER_TESTS_DIRS = ['/etc/postgresql', '/var/lib/postgresql', '/var/log/postgresql', '/run/postgresql',
                    '/run/netns']

_deb: Path | None = None
_out = tempfile.mkdtemp(prefix='pgrm-deb-out.')
os.chmod(_out, 0o755)   # apt's _apt user reads the .deb


def run(*argv, check: bool = True, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                          env=harness.clean_env(env))
    if check:
        assert proc.returncode == 0, f'{" ".join(map(str, argv))}: exit {proc.returncode}\n{harness.output(proc)}'
    return proc


def apt(*args):
    run('apt-get', '-y', '-q', '-o', 'DPkg::Lock::Timeout=300', *args,
        env={'DEBIAN_FRONTEND': 'noninteractive'})


def status(package: str) -> str:
    """dpkg's status word for package: installed, config-files, not-installed."""
    proc = run('dpkg-query', '-W', '-f=${db:Status-Status}', package, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else 'not-installed'


def deb() -> Path:
    """The package, built once by scripts/deb."""
    global _deb
    if _deb is None:
        t0 = time.monotonic()
        proc = run(SOURCE / 'scripts' / 'deb', _out, timeout=1800)
        print(f'# scripts/deb: {time.monotonic() - t0:.0f} s', flush=True)
        debs = list(Path(_out).glob('pgrm_*.deb'))
        assert len(debs) == 1, f'scripts/deb left {debs}\n{harness.output(proc)}'
        _deb = debs[0]
    return _deb


def version() -> str:
    text = (SOURCE / 'debian' / 'changelog').read_text()
    return re.match(r'pgrm \(([^)]+)\)', text).group(1)


def shipped() -> list:
    """The paths in the .deb, absolute ('/usr/bin/pgrm'), directories included."""
    tar = subprocess.run(['dpkg-deb', '--fsys-tarfile', str(deb())], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        return [os.path.normpath('/' + m.name) for m in t.getmembers() if m.name.strip('./')]


def ours() -> set:
    """Files and directories under TREES named like pgrm's (pgrm, repmgrd@), but for
    OTHER_TESTS_DIRS, where other tests make theirs meanwhile."""
    prune = [a for d in OTHER_TESTS_DIRS for a in ('-o', '-path', d)][1:]
    found = run('find', *TREES, '-xdev', '(', *prune, ')', '-prune', '-o',
                '(', '-name', '*pgrm*', '-o', '-name', 'repmgrd@*', ')', '-print', check=False).stdout
    return set(found.split())


def check_pgrm():
    """The installed package works, as its README.Debian says to use it."""
    want = run(harness.pgrm_path('repmgr'), '--version').stdout
    path = f'{PERSONAS}:/usr/sbin:/usr/bin:/sbin:/bin'
    assert run('repmgr', '--version', env={'PATH': path}).stdout == want
    assert run('pgrm', 'repmgr', '--version').stdout == want
    assert run('/usr/bin/pgrm', '--version').stdout.strip() == f'pgrm {version()}'
    print(f'# installed /usr/bin/pgrm: {Path("/usr/bin/pgrm").stat().st_size} bytes', flush=True)
    r = run('repmgrd', '--help', env={'PATH': path})
    assert r.stdout.startswith('repmgrd:') and '--daemonize' in r.stdout, harness.output(r)
    # man finds the personas' pages from PATH (bin/../man), pgrm's where it looks anyway.
    page = run('man', '-w', 'repmgr', env={'PATH': path}).stdout.strip()
    assert page == '/usr/lib/pgrm/man/man1/repmgr.1.gz', page
    text = run('man', 'repmgr', env={'PATH': path, 'MANPAGER': 'cat', 'MANWIDTH': '80'}).stdout
    assert 'pgrm' in text and 'standby clone' in text, text[:500]
    assert run('man', '-w', 'pgrm').stdout.strip() == '/usr/share/man/man1/pgrm.1.gz'
    assert run('man', '-w', 'repmgrd.8', env={'PATH': path}).stdout.strip() == \
        '/usr/lib/pgrm/man/man8/repmgrd.8.gz'
    # The unit, as systemd would load an instance of it.
    r = run('systemd-analyze', 'verify', 'repmgrd@15-main.service', check=False)
    assert r.returncode == 0 and 'repmgrd@' not in r.stderr, harness.output(r)
    run('logrotate', '--debug', '--state', f'{_out}/logrotate.state', '/etc/logrotate.d/pgrm')
    assert Path('/usr/share/doc/pgrm/examples/repmgr.conf').is_file()
    # Nothing from the tree it was built in (scripts/deb's /tmp/pgrm-deb.XXXXXX copy).
    for name in run('dpkg', '-L', 'pgrm').stdout.split('\n'):
        p = Path(name)
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            for marker in (b'pgrm-deb.', b'obj-x86_64', str(SOURCE).encode()):
                assert marker not in data, f'{p} holds {marker!r}'


def check_repmgr5():
    """Debian's repmgr answers from /usr/bin/repmgr, its files as shipped."""
    r = run('/usr/bin/repmgr', '--version')
    assert r.stdout.startswith('repmgr 5.'), harness.output(r)
    r = harness.run_as_pg(['/usr/bin/repmgrd', '--version'])   # repmgr 5 refuses root
    assert r.stdout.startswith('repmgrd 5.'), harness.output(r)
    r = run('dpkg', '--verify', *DEBIAN_REPMGR, check=False)
    assert r.returncode == 0 and not r.stdout, harness.output(r)


def install_pgrm():
    apt('install', deb())
    assert status('pgrm') == 'installed'


def purge_pgrm(before: set):
    """Purges pgrm; nothing it shipped or made is left (before: ours() before install)."""
    files = [p for p in shipped() if not Path(p).is_dir()]
    apt('purge', 'pgrm')
    assert status('pgrm') == 'not-installed', status('pgrm')
    left = [p for p in files if os.path.lexists(p)]
    assert not left, f'left behind: {left}'
    extra = ours() - before
    assert not extra, f'left behind: {sorted(extra)}'


def test_package_builds_lintian_clean():
    name = deb().name
    arch = run('dpkg', '--print-architecture').stdout.strip()
    assert name == f'pgrm_{version()}_{arch}.deb', name
    r = run('lintian', '--fail-on', 'error,warning', deb(), check=False)
    tags = [line for line in r.stdout.splitlines() if re.match(r'^[EW]: ', line)]
    assert r.returncode == 0 and not tags, harness.output(r)
    paths = shipped()
    for p in ('/usr/bin/pgrm', '/usr/lib/pgrm/bin/repmgr', '/usr/lib/pgrm/bin/repmgrd',
              '/usr/share/man/man1/pgrm.1.gz', '/usr/lib/pgrm/man/man1/repmgr.1.gz',
              '/usr/lib/pgrm/man/man8/repmgrd.8.gz', '/usr/lib/pgrm/man/man5/repmgr.conf.5.gz',
              '/lib/systemd/system/repmgrd@.service', '/etc/logrotate.d/pgrm',
              '/usr/share/doc/pgrm/examples/repmgr.conf', '/usr/share/doc/pgrm/README.Debian'):
        assert p in paths, f'{p} not in the package: {paths}'
    # Debian's repmgr owns these.
    assert '/usr/bin/repmgr' not in paths and '/usr/bin/repmgrd' not in paths, paths
    size = deb().stat().st_size
    print(f'# {name}: {size} bytes', flush=True)


def test_install_and_purge_beside_debian_repmgr_both_orders():
    initially = status(DEBIAN_REPMGR[0])
    manual = set(run('apt-mark', 'showmanual').stdout.split())
    assert status('pgrm') == 'not-installed', 'pgrm is installed already: purge it first'
    before = ours()
    try:
        if initially != 'installed':
            apt('install', DEBIAN_REPMGR[0])
        # pgrm installed and purged while repmgr stays.
        check_repmgr5()
        install_pgrm()
        check_pgrm()
        check_repmgr5()
        purge_pgrm(before)
        check_repmgr5()
        # repmgr removed, then installed and removed again while pgrm stays.
        apt('remove', *DEBIAN_REPMGR)
        assert not os.path.lexists('/usr/bin/repmgr')
        install_pgrm()
        check_pgrm()
        apt('install', DEBIAN_REPMGR[0])
        check_repmgr5()
        check_pgrm()
        apt('remove', *DEBIAN_REPMGR)
        check_pgrm()
        # A log the unit's LogsDirectory= and log_file made: rotated, then gone with a purge.
        logs = Path('/var/log/pgrm')
        logs.mkdir(mode=0o750)
        (logs / 'repmgrd-15-main.log').write_text('[2026-12-07 03:00:00.000] [NOTICE] repmgrd started\n')
        for p in (logs, logs / 'repmgrd-15-main.log'):
            shutil.chown(p, harness.PG_USER, harness.PG_USER)
        r = run('logrotate', '--force', '--verbose', '--state', f'{_out}/logrotate.state', '/etc/logrotate.d/pgrm')
        assert (logs / 'repmgrd-15-main.log.1').is_file(), harness.output(r)
        purge_pgrm(before)
    finally:
        if status('pgrm') != 'not-installed':
            apt('purge', 'pgrm')
        if initially == 'installed':
            apt('install', DEBIAN_REPMGR[0])
            for p in DEBIAN_REPMGR:
                run('apt-mark', 'manual' if p in manual else 'auto', p)
        elif status(DEBIAN_REPMGR[0]) != 'not-installed':
            apt('remove', *DEBIAN_REPMGR)
    assert status(DEBIAN_REPMGR[0]) == initially
    assert set(run('apt-mark', 'showmanual').stdout.split()) == manual, 'apt-mark states changed'
    if initially == 'installed':
        check_repmgr5()


def main() -> int:
    if os.geteuid() != 0:
        print('skip: installs packages: needs root', flush=True)
        return 77
    if shutil.which('dpkg-buildpackage') is None:
        print('skip: no dpkg-buildpackage (dpkg-dev)', flush=True)
        return 77
    try:
        return harness.main(globals(), needs_pg=False)
    finally:
        shutil.rmtree(_out, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
