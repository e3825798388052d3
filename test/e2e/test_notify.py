#!/usr/bin/env python3
"""End to end: repmgrd under systemd's notification protocol (Type=notify), without
systemd: the test binds the NOTIFY_SOCKET itself (a unix datagram socket that receives
each sender's pid, as systemd's does) and starts real daemons on harness.setup_three's
cluster with it set.

  1. node2's daemon (a standby), with WATCHDOG_USEC set and WATCHDOG_PID its own pid:
     READY=1 once, in the message of its first pass (which has a last check); STATUS=
     naming its state, its primary and the last check, every pass; WATCHDOG=1 every pass;
     all sent by the daemon's own process; STOPPING=1 when it is asked to stop.
  2. node1's daemon (the primary), with WATCHDOG_PID another process's: READY=1 and
     STATUS= as the primary, and no WATCHDOG=1 in its next passes (the watchdog is not
     this process's).

Skipped (77) when the build has no libsystemd (meson -Dsystemd=disabled): the daemon
then sends nothing, by design.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import daemon_cluster, setup_three, wait_until  # noqa: E402

# Exports the shell's pid, which exec hands on to the daemon, as WATCHDOG_PID.
OWN_PID = ['sh', '-c', 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', 'sh']
STATUS = re.compile(r'^(\w+); primary: (node \d+|this node|unknown); '
                    r'last check: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|none yet)$')


class NotifySocket:
    """A NOTIFY_SOCKET, as systemd binds it: each datagram with its sender's pid."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list = []   # (pid, {key: value})

    def drain(self) -> list:
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except BlockingIOError:
                return self.messages
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack('3i', payload[:12])[0]
            fields = dict(line.split('=', 1) for line in data.decode().splitlines() if '=' in line)
            self.messages.append((pid, fields))

    def with_key(self, key: str) -> list:
        return [(pid, m) for pid, m in self.drain() if key in m]

    def close(self):
        self.sock.close()


def built_with_systemd() -> bool:
    config = (harness.BUILD_DIR / 'pgrm_config.h').read_text()
    return re.search(r'^#define PGRM_HAVE_SYSTEMD 1$', config, re.M) is not None


def statuses(sock: NotifySocket) -> list:
    return [STATUS.match(m['STATUS']) for _, m in sock.with_key('STATUS')]


def test_ready_status_and_watchdog():
    if not built_with_systemd():
        raise harness.SkipTest('built without libsystemd (meson -Dsystemd=disabled)')
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c, daemons=())
        standby = NotifySocket(sb.path('notify-node2.sock'))
        primary = NotifySocket(sb.path('notify-node1.sock'))
        sb.on_cleanup(standby.close)
        sb.on_cleanup(primary.close)

        # 1. The standby, its watchdog on.
        d2 = c.start_daemon(2, env={'NOTIFY_SOCKET': standby.path, 'WATCHDOG_USEC': 10_000_000},
                            launcher=OWN_PID)
        wait_until(lambda: len(standby.with_key('WATCHDOG')) >= 3, timeout=60,
                   what="three WATCHDOG=1 from node2's repmgrd")
        wait_until(lambda: any(s and s.group(1) == 'standby' for s in statuses(standby)), timeout=60,
                   what="node2's repmgrd to report state standby")
        sent = standby.drain()
        assert {pid for pid, _ in sent} == {d2.pid}, f'senders {sent}, daemon pid {d2.pid}'
        ready = [i for i, (_, m) in enumerate(sent) if m.get('READY') == '1']
        assert len(ready) == 1, f'READY=1 sent {len(ready)} times: {sent}'
        first = sent[ready[0]][1]
        assert ready[0] == 0 and STATUS.match(first['STATUS']).group(3) != 'none yet', (
            f'READY=1 before a pass was done: {sent}')
        assert all('STATUS' in m and 'WATCHDOG' in m for _, m in sent), sent
        parsed = statuses(standby)
        assert all(parsed), f'a STATUS= of another shape: {sent}'
        last = parsed[-1]
        assert last.group(1) == 'standby' and last.group(2) == 'node 1', sent

        d2.proc.terminate()
        assert d2.proc.wait(timeout=60) == 0, d2.tail()
        assert standby.drain()[-1][1].get('STOPPING') == '1', standby.messages[-3:]

        # 2. The primary, with a watchdog that is another process's.
        d1 = c.start_daemon(1, env={'NOTIFY_SOCKET': primary.path, 'WATCHDOG_USEC': 10_000_000,
                                    'WATCHDOG_PID': os.getpid()})
        wait_until(lambda: [s.group(1) for s in statuses(primary)][-4:].count('primary') >= 3,
                   timeout=60, what="three passes of node1's repmgrd as the primary")
        sent = primary.drain()
        assert {pid for pid, _ in sent} == {d1.pid}, f'senders {sent}, daemon pid {d1.pid}'
        assert sent[0][1].get('READY') == '1', sent
        assert statuses(primary)[-1].group(2) == 'this node', sent
        assert not primary.with_key('WATCHDOG'), f'WATCHDOG=1 for a watchdog not its own: {sent}'


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
