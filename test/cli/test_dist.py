#!/usr/bin/env python3
"""What an installed system gets beside the binary (dist/, debian/), checked without
installing it (test/deb installs the package):

  - systemd-analyze verify accepts repmgrd@.service, as an instance (repmgrd@15-main),
    with no warning about it (a misspelt key or value is only a warning to systemd);
  - debian/changelog's version is the one pgrm --version prints (the package's name and
    the binary's version must not drift apart).

Usage: test_dist.py SOURCE_DIR (with PGRM_BUILD_DIR set, as meson test does)."""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'e2e'))
import harness  # noqa: E402
from harness import pgrm  # noqa: E402

SOURCE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]


def test_unit_verifies():
    if shutil.which('systemd-analyze') is None:
        raise harness.SkipTest('no systemd-analyze')
    # The installed unit with its ExecStart in this build tree (systemd-analyze checks it
    # is executable); its man: link is checked where the package installs it (test/deb).
    text = (SOURCE / 'dist' / 'repmgrd@.service.in').read_text()
    assert text.count('@REPMGRD@') == 1, 'one ExecStart naming the repmgrd persona'
    with tempfile.TemporaryDirectory(prefix='pgrm-unit-') as d:
        (Path(d) / 'repmgrd@.service').write_text(text.replace('@REPMGRD@', str(harness.pgrm_path('repmgrd'))))
        r = subprocess.run(['systemd-analyze', 'verify', '--man=no', 'repmgrd@15-main.service'],
                           capture_output=True, text=True, timeout=60,
                           env=harness.clean_env({'SYSTEMD_UNIT_PATH': d + ':'}))
    about_it = [line for line in r.stderr.splitlines() if 'repmgrd@' in line]
    assert r.returncode == 0 and not about_it, harness.output(r)


def test_debian_changelog_has_the_version():
    m = re.match(r'pgrm \(([^)]+)\) ', (SOURCE / 'debian' / 'changelog').read_text())
    assert m, 'debian/changelog does not start with "pgrm (VERSION) "'
    out = pgrm('--version', persona='pgrm', check=0).stdout.strip()
    assert out == f'pgrm {m.group(1)}', f'pgrm --version says "{out}", debian/changelog {m.group(1)}'


if __name__ == '__main__':
    sys.exit(harness.main(globals(), needs_pg=False, argv=[]))
