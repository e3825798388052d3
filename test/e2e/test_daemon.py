#!/usr/bin/env python3
"""End to end: the daemon (repmgrd) on real servers on loopback.

Every daemon is a subprocess of this test, in the foreground (as under systemd), run as
root like users run it, logging to a file in the sandbox; each is always terminated in a
finally. Settings for speed: monitor_interval_secs=1, reconnect_attempts=2,
reconnect_interval=1.

  1. lag rows appear in repl_monitor and the seed's repl_status query shows them; a
     standby's daemon registers its standby (repl_nodes row, standby_register event);
  2. time_lag grows while the primary is stopped (failover = manual);
  3. SIGHUP reloads the config (new log_file) and keeps running; a second daemon on the
     same --pid-file is refused (exit 1), and so is a pid file that is a symbolic link,
     a directory or a FIFO (the link's target untouched); the log file is reopened
     (rotation); a broken config is refused and the daemon runs on; --verbose survives a
     reload;
  4. SIGTERM stops it within 1 s with exit code 0;
  5. automatic failover after kill -9 of the primary under pgbench load with quorum
     synchronous replication: exactly one standby promotes, the other follows, no
     acknowledged row is lost, and nobody holds the promotion for a fence (refused);
  6. a SIGSTOP'd primary is handled like a dead one, and once resumed is fenced by its
     own daemon (read-only), never two writable primaries after that;
  7. failover = manual never promotes, and a daemon whose standby is promoted from
     outside exits with ERR_PROMOTED (8);
  8. priority 0 never promotes (and the daemon says that is why); a priority-0 standby
     holding acknowledged commits the others lack must not be overtaken by a promotion
     that loses them; a primary whose SQL link alone is lost (the candidate's own WAL
     receiver, or a sibling's, still streaming from it), or that refuses the daemons,
     lives: nobody promotes;
  9. a two-node cluster never promotes (not a majority).

Negative tests wait for the daemons to decide (their log), then hold a bounded window
(harness.stays_false) in which nothing may happen; none sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (DAEMON_FAST, AckWriter, DaemonCluster, TwoPrimaries, clone_args,  # noqa: E402
                     daemon_cluster, daemon_conf_text, in_recovery, log_of, make_primary,
                     one_promoted, output, pgbench_load, pgrm, setup_three, wait_streaming,
                     wait_streaming_from, wait_until, writable, write_daemon_conf)


# Fence before promote (repmgrd(8)): the margin the fence must precede a promotion by
# (fence_margin of repmgr.conf(5)).
FENCE_MARGIN = 1.0


def logged_at(daemon, text: str) -> datetime:
    """When a daemon first logged a line holding text, by its log's own timestamp
    ("[2026-12-07 06:01:02.345] [NOTICE] ..."): the daemons of a test share this machine's
    clock, so two daemons' times compare."""
    for line in daemon.log_text().splitlines():
        if text in line:
            return datetime.strptime(line[1:24], '%Y-%m-%d %H:%M:%S.%f')
    raise AssertionError(f'no log line with {text!r}{daemon.tail(60)}')


def promote_after(daemon) -> float:
    """promote_after as the daemon logged it at start, in seconds."""
    m = re.search(r'promotes no sooner than (\d+) (ms|s) after', daemon.log_text())
    assert m, daemon.tail(60)
    return int(m.group(1)) / (1000 if m.group(2) == 'ms' else 1)


# --------------------------------------------------------------------------------------
# 1. Lag rows, the seed's repl_status query, auto-registration


def test_lag_rows_and_auto_register():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c, daemons=(1, 2, 3))
        n1 = c.nodes[1]
        # Rows keep coming: at least 3 passes for each standby.
        wait_until(lambda: n1.psql('select count(*) >= 3 from repmgr_test.repl_monitor '
                                   'where standby_node = 2', db='pgbench') == 't'
                   and n1.psql('select count(*) >= 3 from repmgr_test.repl_monitor '
                               'where standby_node = 3', db='pgbench') == 't',
                   timeout=20, what='three monitoring rows per standby')
        # The seed's query, as the README shows it.
        proc = harness.run_as_pg([harness.pg_bin('psql'), '-X', '-h', '127.0.0.1', '-p', n1.port,
                                  '-U', 'postgres', '-x', '-d', 'pgbench', '-c',
                                  'SELECT * FROM repmgr_test.repl_status'])
        text = proc.stdout
        for field in ('primary_node', 'standby_node', 'last_monitor_time',
                      'last_wal_primary_location', 'last_wal_standby_location',
                      'replication_lag', 'apply_lag', 'time_lag'):
            assert re.search(rf'^{field}\s+\|', text, re.M), f'no {field} in\n{text}'
        standbys = re.findall(r'^standby_node\s+\|\s*(\d+)', text, re.M)
        assert sorted(standbys) == ['2', '3'], text
        primaries = re.findall(r'^primary_node\s+\|\s*(\d+)', text, re.M)
        assert primaries == ['1', '1'], text
        lags = re.findall(r'^replication_lag\s+\|\s*(.*)$', text, re.M)
        assert len(lags) == 2 and all(re.fullmatch(r'\d+ bytes', l.strip()) for l in lags), text
        # ... and the view is replicated: a standby shows it too.
        wait_until(lambda: c.nodes[2].psql('select count(*) from repmgr_test.repl_status',
                                           db='pgbench') == '2', what='repl_status on node2')

        # node2 was registered by its daemon, as a standby of node1, with an event.
        assert n1.psql('select type, upstream_node_id, name from repmgr_test.repl_nodes '
                       'where id = 2', db='pgbench') == 'standby|1|node2'
        assert n1.psql("select count(*) from repmgr_test.events where node_id = 2 "
                       "and event = 'standby_register' and successful", db='pgbench') == '1'
        assert 'standby register' in c.daemons[2].log_text(), c.daemons[2].tail()
        # Every daemon still runs.
        for d in c.daemons.values():
            assert d.running(), d.tail()


# --------------------------------------------------------------------------------------
# 2. time_lag grows while the primary is stopped


def test_time_lag_grows_while_primary_stopped():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        manual = {'failover': 'manual'}
        setup_three(c, {1: manual, 2: manual, 3: manual}, daemons=(2, 3))
        n1, n2 = c.nodes[1], c.nodes[2]
        # A monitoring row is on node2 by replication.
        wait_until(lambda: n2.psql('select count(*) from repmgr_test.repl_status',
                                   db='pgbench') == '2', what='repl_status rows on node2')
        n1.stop('fast')
        sql = 'select extract(epoch from time_lag) from repmgr_test.repl_status where standby_node = 2'
        first = float(n2.psql(sql, db='pgbench'))
        t_first = time.monotonic()
        # It grows with the clock: 1.5 s more within a few seconds, never faster than time.
        second = wait_until(lambda: (lag := float(n2.psql(sql, db='pgbench'))) >= first + 1.5 and lag,
                            timeout=10, interval=0.1, what='time_lag to grow by 1.5 s')
        assert second - first <= time.monotonic() - t_first + 0.5, (first, second)
        # Neither standby promoted (manual), both daemons run.
        assert in_recovery(n2) and in_recovery(c.nodes[3])
        for d in c.daemons.values():
            assert d.running(), d.tail()


# --------------------------------------------------------------------------------------
# 3, 4. Signals and the pid file (a primary and one standby suffice)


def primary_and_standby(c: DaemonCluster, settings: dict | None = None):
    sb = c.sb
    n1 = make_primary(sb, scale=None)
    c.nodes[1] = n1
    c.confs[1] = write_daemon_conf(sb, 1, n1, **(settings or {}))
    pgrm('-f', c.confs[1], 'master', 'register', check=0)
    n2 = sb.new_instance('node2')
    c.nodes[2] = n2
    c.confs[2] = write_daemon_conf(sb, 2, n2, **(settings or {}))
    pgrm('-f', c.confs[2], *clone_args(n2.datadir, n1), check=0)
    n2.start()
    wait_streaming_from(n2, n1)


def test_commands_it_runs_are_logged_when_they_succeed():
    """node2 does not stream when its daemon registers it: standby register succeeds with
    a warning. The daemon runs it with --json and logs its log lines (the warning) and
    its result's summary, not only when it fails."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        primary_and_standby(c, {'failover': 'manual'})
        n2 = c.nodes[2]
        n2.psql("alter system set primary_conninfo = 'host=127.0.0.1 port=1 user=postgres'")
        n2.psql('select pg_reload_conf()')
        wait_until(lambda: not harness.streaming(n2), what='node2 to stop streaming')
        d = c.start_daemon(2)
        wait_until(lambda: c.nodes_sql() == '1|primary|t\n2|standby|t', what="node2's daemon to register node2")
        d.wait_log(r'\[WARNING\] standby register: this standby is not streaming; '
                   r'recording the primary as its upstream', timeout=5)
        d.wait_log(r'\[NOTICE\] standby register: node 2 \("node2"\) registered as standby of node 1',
                   timeout=5)
        d.wait_log(r'running: \S+ repmgr -f \S+ --json --verbose standby register', timeout=5)


def test_sighup_reload_and_pid_file():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        primary_and_standby(c, {'failover': 'manual'})
        pid_file = sb.path('repmgrd2.pid')
        d = c.start_daemon(2, '--pid-file', pid_file)
        wait_until(lambda: c.nodes_sql() == '1|primary|t\n2|standby|t', what='node2 registered')
        d.wait_log('repmgrd started')
        wait_until(lambda: pid_file.read_text().strip() == str(d.pid), what='pid in the pid file')

        # A second daemon with the same pid file is refused, and the first keeps running.
        second = subprocess.run([str(harness.pgrm_path('repmgrd')), '-f', str(c.confs[2]),
                                 '--pid-file', str(pid_file)],
                                capture_output=True, text=True, timeout=30, env=harness.clean_env())
        assert second.returncode == 1, output(second)
        assert 'already running' in second.stderr + second.stdout + d.log_text(), output(second)
        assert d.running() and pid_file.read_text().strip() == str(d.pid)
        # So is one without a pid file, or with another one: one daemon per node.
        for extra in ([], ['--pid-file', str(sb.path('other.pid'))]):
            again = subprocess.run([str(harness.pgrm_path('repmgrd')), '-f', str(c.confs[2]), *extra],
                                   capture_output=True, text=True, timeout=30, env=harness.clean_env())
            assert again.returncode == 1, output(again)
            assert 'already running for node 2' in again.stderr, output(again)
        assert not sb.path('other.pid').exists()
        assert d.running() and pid_file.read_text().strip() == str(d.pid)

        # SIGHUP: a new log_file and monitor interval; the reload is logged in the new file.
        # A dcs turned on midway is refused with a warning (in the log in use until the
        # reload): the one in use stays, as a lease taken under it would.
        old_log = log_of(c.confs[2])
        new_log = sb.path('repmgrd2-new.log')
        c.confs[2].write_text(daemon_conf_text(2, c.nodes[2], sb, failover='manual',
                                        log_file=str(new_log), monitor_interval_secs=2,
                                        dcs='etcd', etcd_endpoints='http://127.0.0.1:9'))
        os.kill(d.pid, signal.SIGHUP)
        wait_until(lambda: new_log.exists() and 'configuration reloaded' in new_log.read_text(),
                   timeout=10, what='"configuration reloaded" in the new log file')
        assert d.running(), d.tail()
        assert 'dcs or etcd settings changed: the ones in use stay' in old_log.read_text(), d.tail()
        # It keeps monitoring after the reload, logging to the new file only.
        n_rows = int(c.nodes[1].psql('select count(*) from repmgr_test.repl_monitor',
                                     db='pgbench'))
        wait_until(lambda: int(c.nodes[1].psql('select count(*) from repmgr_test.repl_monitor',
                                               db='pgbench')) >= n_rows + 2,
                   timeout=15, what='monitoring rows after the reload')
        old_size = old_log.stat().st_size
        # Log rotation: the file is moved away, SIGHUP makes the daemon write a new one.
        rotated = sb.path('repmgrd2-new.log.1')
        new_log.rename(rotated)
        os.kill(d.pid, signal.SIGHUP)
        wait_until(lambda: new_log.exists() and 'configuration reloaded' in new_log.read_text(),
                   timeout=10, what='a new log file after rotation and SIGHUP')
        rotated_size = rotated.stat().st_size
        # Passes after the rotation (monitoring rows), each of which could have written
        # to the old files.
        n_rows = int(c.nodes[1].psql('select count(*) from repmgr_test.repl_monitor', db='pgbench'))
        wait_until(lambda: int(c.nodes[1].psql('select count(*) from repmgr_test.repl_monitor',
                                               db='pgbench')) >= n_rows + 2,
                   timeout=15, what='monitoring rows after the rotation')
        assert rotated.stat().st_size == rotated_size, 'the rotated log file is still written to'
        assert old_log.stat().st_size == old_size, 'the old log file is still written to'
        assert d.running(), d.tail()

        # A broken config on SIGHUP: logged, the old settings stay, the daemon runs on.
        good = c.confs[2].read_text()
        c.confs[2].write_text(good + 'failover=sometimes\n')
        os.kill(d.pid, signal.SIGHUP)
        wait_until(lambda: 'configuration not reloaded' in new_log.read_text(), timeout=10,
                   what='"configuration not reloaded"')
        assert d.running(), d.tail()
        c.confs[2].write_text(good)

        rc = d.stop()
        assert rc == 0, f'exit code {rc}\n{d.tail()}'
        assert not pid_file.exists(), 'pid file left behind after a clean stop'


def test_pid_file_never_follows_a_link():
    """--pid-file naming a symbolic link (to a file it must not touch), a directory or a
    FIFO is refused with exit 1 before anything is written; the target is unchanged. No
    server is needed: the pid file is taken before the daemon connects."""
    with harness.Sandbox() as sb:
        n1 = sb.new_instance('node1')   # only for its port and data directory path
        conf = harness.write_conf(sb, 1, n1, log_file=sb.path('repmgrd1.log'))
        victim = sb.path('victim')
        victim.write_text('precious\n')
        link = sb.path('repmgrd.pid')
        link.symlink_to(victim)
        fifo = sb.path('fifo.pid')
        os.mkfifo(fifo)
        cases = [(link, 'is a symbolic link'), (sb.root, 'is not a regular file'),
                 (fifo, 'is not a regular file')]
        for path, why in cases:
            d = subprocess.Popen([str(harness.pgrm_path('repmgrd')), '-f', str(conf),
                                  '--pid-file', str(path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=harness.clean_env(),
                                 start_new_session=True)
            try:
                out, err = d.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                harness.end_process_group(d)
                raise AssertionError(f'repmgrd started with --pid-file {path} ({why}); '
                                     f'the link target now holds {victim.read_text()!r}')
            proc = subprocess.CompletedProcess(d.args, d.returncode, out, err)
            assert proc.returncode == 1, output(proc)
            assert f'pid file "{path}" {why}' in proc.stderr, output(proc)
            assert victim.read_text() == 'precious\n', f'the link target was written: {output(proc)}'
        assert link.is_symlink() and fifo.exists()


def test_local_server_down_logged_once():
    """A standby's own server stopped for several passes: one warning, not one a pass;
    then a line when it answers again, and monitoring resumes."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        primary_and_standby(c, {'failover': 'manual'})
        d = c.start_daemon(2)
        d.wait_log('repmgrd started')
        wait_until(lambda: c.nodes_sql() == '1|primary|t\n2|standby|t', what='node2 registered')
        def warnings():  # the change of state, then each new reason
            return [ln for ln in d.log_text().splitlines() if '[WARNING]' in ln and 'local server:' in ln]
        c.nodes[2].stop('fast')
        # The session ends, then connections are refused: a warning for each reason,
        # and none for the passes after.
        wait_until(lambda: any('could not connect' in w for w in warnings()), timeout=15,
                   what='the warning that the local server refuses connections')
        seen = warnings()
        harness.stays_false(lambda: warnings() != seen and '\n'.join(warnings()),
                            5 * DAEMON_FAST['monitor_interval_secs'], what='a warning for the same outage')
        assert d.running(), d.tail()
        assert len(seen) <= 2, '\n'.join(seen)
        c.nodes[2].start()
        d.wait_log('local server answers again', timeout=20)
        rows = int(c.nodes[1].psql('select count(*) from repmgr_test.repl_monitor', db='pgbench'))
        wait_until(lambda: int(c.nodes[1].psql('select count(*) from repmgr_test.repl_monitor',
                                               db='pgbench')) > rows,
                   timeout=15, what='monitoring rows again')


def test_sighup_does_not_shorten_reconnect_attempts():
    """SIGHUPs (logrotate) while the primary is being retried: the attempts still wait
    reconnect_interval apart, so the primary is not declared lost early."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        primary_and_standby(c, {'failover': 'manual', 'reconnect_attempts': 3,
                                'reconnect_interval': 2})
        d = c.start_daemon(2)
        wait_until(lambda: c.nodes_sql() == '1|primary|t\n2|standby|t', what='node2 registered')
        c.nodes[1].stop('fast')
        d.wait_log('attempt 1 of 3', timeout=15)
        for _ in range(10):
            os.kill(d.pid, signal.SIGHUP)
            time.sleep(0.2)
        d.wait_log('is lost', timeout=30)

        def stamp(pattern: str) -> float:
            line = next(ln for ln in d.log_text().splitlines() if pattern in ln)
            return datetime.strptime(line[1:24], '%Y-%m-%d %H:%M:%S.%f').timestamp()
        spent = stamp('is lost') - stamp('attempt 1 of 3')
        assert spent >= 3.9, f'declared lost {spent:.2f} s after the first attempt, not 2 x 2 s{d.tail(20)}'
        d.wait_log('configuration reloaded', timeout=10)
        assert d.running(), d.tail()


def test_sighup_keeps_verbose():
    """--verbose on the command line must outlive a SIGHUP: after a reload, info-level
    messages (here "primary check failed", logged at info when the primary is gone) are
    still written."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        primary_and_standby(c, {'failover': 'manual'})
        d = c.start_daemon(2)  # --verbose
        d.wait_log('repmgrd started')
        wait_until(lambda: c.nodes_sql() == '1|primary|t\n2|standby|t', what='node2 registered')
        os.kill(d.pid, signal.SIGHUP)
        d.wait_log('configuration reloaded', timeout=10)
        mark = len(d.log_text())
        c.nodes[1].stop('immediate')
        d.wait_log('primary not answering', timeout=15)
        # Each attempt logs its failure at info, right after the warning above.
        wait_until(lambda: 'primary check failed' in d.log_text()[mark:], timeout=5,
                   what='"primary check failed" (info) after the reload: the daemon was started '
                        'with --verbose')


def test_sigterm_exits_quickly():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        primary_and_standby(c)
        d1 = c.start_daemon(1)
        d2 = c.start_daemon(2)
        d1.wait_log('this node is the primary')
        wait_until(lambda: c.nodes_sql() == '1|primary|t\n2|standby|t', what='node2 registered')
        wait_until(lambda: c.nodes[1].psql('select count(*) > 1 from repmgr_test.repl_monitor',
                                           db='pgbench') == 't', what='monitoring rows')
        for d in (d2, d1):
            t0 = time.monotonic()
            os.kill(d.pid, signal.SIGTERM)
            try:
                rc = d.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                raise AssertionError(f'repmgrd {d.name} still running 1 s after SIGTERM{d.tail()}')
            dt = time.monotonic() - t0
            assert rc == 0, f'repmgrd {d.name}: exit code {rc}{d.tail()}'
            assert 'repmgrd stopping' in d.log_text(), d.tail()
            print(f'# {d.name}: SIGTERM -> exit 0 in {dt * 1000:.0f} ms', flush=True)
        # SIGINT too.
        mark = d2.log_text().count('state starting -> standby')
        d = c.start_daemon(2)
        wait_until(lambda: d.log_text().count('state starting -> standby') > mark, timeout=10,
                   what="the restarted daemon's first pass")
        os.kill(d.pid, signal.SIGINT)
        rc = d.proc.wait(2)
        assert rc == 0, f'SIGINT: exit code {rc}{d.tail()}'


# --------------------------------------------------------------------------------------
# 5. Automatic failover after kill -9 under load, no acknowledged commit lost


def test_failover_kill9_under_load():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c, sync=True)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        n1.psql('create table acks(i int)', db='pgbench')
        pgbench_load(c, n1, '-c', '2', '-T', '30', '-n')
        writer = AckWriter(n1)
        writer.start()
        try:
            wait_until(lambda: len(writer.acked) >= 20, timeout=20, what='20 acknowledged rows')
            wait_until(lambda: n1.psql("select count(*) from pg_stat_activity "
                                       "where application_name = 'pgbench'") == '2',
                       timeout=10, what='pgbench running')
            with TwoPrimaries([n1, n2, n3]) as guard:
                t_kill = time.monotonic()
                n1.kill9()
                new_id = wait_until(lambda: one_promoted(c), timeout=30,
                                    what='exactly one of node2/node3 to accept writes')
                t_promoted = time.monotonic() - t_kill
                new, other = c.nodes[new_id], c.nodes[5 - new_id]
                wait_streaming_from(other, new, timeout=30)
                t_following = time.monotonic() - t_kill
                # And it stays that way for a little while.
                harness.stays_false(lambda: guard.violations, 2, what='two writable nodes')
            print(f'# kill -9 -> node{new_id} writable in {t_promoted:.2f} s, '
                  f'node{5 - new_id} streaming from it in {t_following:.2f} s', flush=True)
        finally:
            writer.stop()
        assert not guard.violations, f'two writable nodes at once: {guard.violations[:5]}'
        assert in_recovery(other), f'{other.name} is not a standby'
        assert writable(new) and not writable(other)
        # No acknowledged row lost.
        acked = set(writer.acked)
        assert acked, 'the writer got no acknowledgement'
        found = set(int(x) for x in new.psql('select i from acks', db='pgbench').split())
        lost = sorted(acked - found)
        assert not lost, f'{len(lost)} acknowledged rows missing on {new.name}: {lost[:20]}'
        print(f'# {len(acked)} acknowledged rows, all on {new.name} '
              f'({len(found)} rows there, {writer.failed} failed attempts)', flush=True)
        # The follower replays a new row.
        new.psql('insert into acks values (-1)', db='pgbench')
        wait_until(lambda: other.psql('select count(*) from acks where i = -1', db='pgbench') == '1',
                   what=f'{other.name} to replay a row written on {new.name}')
        # Metadata: the new primary is the only active primary.
        rows = new.psql("select id from repmgr_test.repl_nodes where type = 'primary' and active",
                        db='pgbench')
        assert rows == str(new_id), rows
        assert new.psql("select count(*) from repmgr_test.events where event = 'standby_promote' "
                        f"and node_id = {new_id}", db='pgbench') == '1'
        # Each daemon's way there, as state changes recorded (once a primary took them)
        # at the time they happened.
        def states(node_id: int) -> str:
            return new.psql("select string_agg(event, ' ' order by event_timestamp, id) from repmgr_test.events "
                            f"where node_id = {node_id} and event like 'repmgrd_%'", db='pgbench')
        wait_until(lambda: states(new_id).endswith('repmgrd_primary_lost_confirming repmgrd_electing '
                                                   'repmgrd_promoting repmgrd_primary'),
                   timeout=15, what=f"node{new_id}'s states, recorded")
        wait_until(lambda: states(5 - new_id).endswith('repmgrd_primary_lost_confirming repmgrd_electing '
                                                       'repmgrd_following_new_primary repmgrd_standby'),
                   timeout=15, what=f"node{5 - new_id}'s states, recorded")
        assert states(new_id).startswith('repmgrd_starting repmgrd_standby'), states(new_id)
        assert new.psql("select details from repmgr_test.events where event = 'repmgrd_promoting' "
                        f"and node_id = {new_id}", db='pgbench').startswith('this node is the candidate'), \
            'the election\'s reason is the promotion\'s'
        for i in (2, 3):
            assert c.daemons[i].running(), c.daemons[i].tail()
        # Refused (nothing listens where node1 did): its server is down, so no candidate
        # held its promotion for a fence (the fast path of fence before promote).
        for i in (2, 3):
            assert 'holding the promotion' not in c.daemons[i].log_text(), c.daemons[i].tail(60)


# --------------------------------------------------------------------------------------
# 6. SIGSTOP'd primary: a standby promotes; resumed, the old primary fences itself


def test_sigstop_primary_then_fenced():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        n1.psql('create table t(x int)', db='pgbench')
        window = DAEMON_FAST['reconnect_attempts'] * DAEMON_FAST['reconnect_interval']
        pids = []
        try:
            pm = n1.pid()
            assert pm, f'{n1.name} is not running'
            pids = harness.freeze(pm)
            t_stop = time.monotonic()
            new_id = wait_until(lambda: one_promoted(c), timeout=window + 80,
                                what='a standby to promote while node1 is frozen')
            t_promoted = time.monotonic() - t_stop
            print(f'# SIGSTOP -> node{new_id} writable in {t_promoted:.2f} s', flush=True)
            new, other = c.nodes[new_id], c.nodes[5 - new_id]
            wait_streaming_from(other, new, timeout=40)
        finally:
            harness.thaw(pids)
        t_cont = time.monotonic()
        # Fenced while frozen: its lease wrote the fence into postgresql.auto.conf and sent
        # the SIGHUP it takes before anything else, so the first write after SIGCONT is
        # refused, not taken before its daemon's next fence (the chaos suite's
        # sigstop-primary: two writable primaries for 100 ms after the thaw).
        try:
            n1.psql('insert into t values (0)', db='pgbench', timeout=10)
            first = 'committed'
        except harness.PsqlError as e:
            first = e.stderr
        assert 'read-only transaction' in first, f'the first write after SIGCONT: {first}{c.daemons[1].tail(40)}'
        c.daemons[1].wait_log('fenced read-only without an answer', timeout=5)
        # Resumed: node1's own daemon fences it (default_transaction_read_only).
        def fenced():
            try:
                n1.psql('insert into t values (1)', db='pgbench', timeout=5)
                return False
            except harness.PsqlError as e:
                return 'read-only transaction' in e.stderr
        wait_until(fenced, timeout=30, what='node1 to be fenced read-only after SIGCONT')
        print(f'# SIGCONT -> node1 fenced in {time.monotonic() - t_cont:.2f} s', flush=True)
        c.daemons[1].wait_log('fencing this primary', timeout=5)
        # Never two writable primaries from now on.
        with TwoPrimaries([n1, n2, n3]) as guard:
            harness.stays_false(lambda: guard.violations, 3, what='two writable nodes')
        assert writable(new) and not writable(n1) and not writable(other)
        new.psql('insert into t values (2)', db='pgbench')
        assert new.psql("select count(*) from repmgr_test.events where event = 'primary_fenced'",
                        db='pgbench') == '1'
        # cluster show tells the fenced old primary from a second writable one.
        show = pgrm('-f', c.confs[new_id], 'cluster', 'show', check=0)
        assert 'more than one primary is writable' not in show.stdout + show.stderr, show.stdout
        assert 'is a primary in read-only mode (fenced' in show.stdout, show.stdout
        doc = json.loads(pgrm('-f', c.confs[new_id], '--json', 'cluster', 'show', check=0).stdout)
        by_id = {n['id']: n for n in doc['data']['nodes']}
        assert by_id[1]['read_only'] is True and by_id[new_id]['read_only'] is False, by_id
        # Only the servers' own configuration counts: a session made read-only by the
        # user's PGOPTIONS shows no primary as fenced (a false alarm, never a hidden one).
        doc = json.loads(pgrm('-f', c.confs[new_id], '--json', 'cluster', 'show', check=0,
                              env={'PGOPTIONS': '-c default_transaction_read_only=on'}).stdout)
        by_id = {n['id']: n for n in doc['data']['nodes']}
        assert by_id[new_id]['read_only'] is False, by_id
        # A frozen primary is lost by timeout: the candidate holds its promotion for the
        # fence (promote_after). The bound is loose on purpose (a loaded CI machine):
        # bench/failover.py holds the real target. What this catches is a wait for
        # wal_receiver_timeout.
        hold = promote_after(c.daemons[new_id])
        if t_promoted > hold + 18:
            raise AssertionError(f'a frozen primary took {t_promoted:.1f} s to be replaced '
                                 f'(promote_after {hold} s){c.daemons[new_id].tail(60)}')


def test_old_primary_reaching_only_a_standby_of_the_new_one_fences():
    """node1 frozen, node2 or node3 is promoted and the other follows it on the new
    timeline; then the new primary freezes in turn and node1 thaws: node1 reaches only
    that standby. A standby on a newer timeline follows a newer primary: it is no part of
    node1's majority (2 of 3, before), and it proves node1 a former primary, which fences."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c)
        n1 = c.nodes[1]
        window = DAEMON_FAST['reconnect_attempts'] * DAEMON_FAST['reconnect_interval']
        old, new_frozen = [], []
        try:
            old = harness.freeze(n1.pid())
            new_id = wait_until(lambda: one_promoted(c), timeout=window + 80,
                                what='a standby to promote while node1 is frozen')
            new, other = c.nodes[new_id], c.nodes[5 - new_id]
            wait_streaming_from(other, new, timeout=40)
            new_frozen = harness.freeze(new.pid())
            harness.thaw(old)
            old = []
            # Frozen for promote_after, node1's daemon found its own server gone meanwhile.
            c.daemons[1].wait_log(f'fencing this primary: (local server answers again; )?node {5 - new_id} is '
                                  'a standby on newer timeline', timeout=60)
            assert n1.psql('show default_transaction_read_only', timeout=10) == 'on'
        finally:
            harness.thaw(old)
            harness.thaw(new_frozen)


# --------------------------------------------------------------------------------------
# 6b. A primary on another host, cut off by a network partition, fences itself


def test_partitioned_primary_fences_itself():
    """node1 runs on another host (a network namespace) and its link goes down: node2 and
    node3, a majority, elect one of them; node1's own daemon, its lease run out, makes
    node1 read-only, at least the fence margin before the candidate starts promoting
    (fence before promote). With the link back, node1 stays fenced and cluster show says
    so."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        host = harness.setup_partitioned(c)
        n1 = c.nodes[1]
        assert writable(n1)

        host.link(False)
        t_cut = time.monotonic()
        new_id = wait_until(lambda: one_promoted(c), timeout=60,
                            what='node2 or node3 to be promoted while node1 is cut off')
        print(f'# link down -> node{new_id} writable in {time.monotonic() - t_cut:.2f} s', flush=True)
        new, other = c.nodes[new_id], c.nodes[5 - new_id]
        wait_streaming_from(other, new, timeout=40)
        # Through its Unix socket, still reachable: node1 fences itself.
        wait_until(lambda: not writable(n1), timeout=30, what='node1 to fence itself')
        print(f'# link down -> node1 fenced in {time.monotonic() - t_cut:.2f} s', flush=True)
        c.daemons[1].wait_log('cut off from a majority', timeout=5)
        assert n1.psql("show default_transaction_read_only") == 'on'
        new.psql('insert into t values (1)', db='pgbench')
        # Fence before promote: node1's fence done (logged after it) precedes the moment
        # the candidate started promoting (logged before it) by at least the margin, and
        # the candidate held its promotion for it (node1 was lost by timeout).
        fenced = logged_at(c.daemons[1], 'this primary is fenced (read-only)')
        promoting = logged_at(c.daemons[new_id], 'state electing -> promoting')
        ahead = (promoting - fenced).total_seconds()
        print(f'# node1 fenced {ahead:.2f} s before node{new_id} started promoting '
              f'(margin {FENCE_MARGIN} s)', flush=True)
        assert 'holding the promotion until the primary has fenced itself' in c.daemons[new_id].log_text(), \
            c.daemons[new_id].tail(60)
        assert ahead >= FENCE_MARGIN, (f'node1 fenced {ahead:.3f} s before the promotion, not '
                                       f'{FENCE_MARGIN} s{c.daemons[1].tail(40)}{c.daemons[new_id].tail(40)}')

        host.link(True)
        # node1 is reached over the link again (cluster show asks it there) ...
        def shown_fenced():
            show = pgrm('-f', c.confs[new_id], 'cluster', 'show', check=0)
            return 'is a primary in read-only mode (fenced' in show.stdout and show
        show = wait_until(shown_fenced, timeout=15, what='cluster show to reach node1 and see it fenced')
        assert 'more than one primary is writable' not in show.stdout + show.stderr, show.stdout
        # ... and stays fenced beside the one writable primary.
        harness.stays_false(lambda: writable(n1) or not writable(new) or writable(other), 3,
                            what='node1 writable again, or the new primary not the only writable node')


def test_primary_waiting_for_its_synchronous_standbys_keeps_its_lease():
    """node1 names a synchronous standby that never connects (a new primary whose standbys
    do not follow it yet, as the chaos suite's sigstop-primary found): its own heartbeat
    commits without waiting for it, so its loop keeps renewing its lease; it saw every
    node all along and must not fence itself. The standbys' daemons record their
    monitoring rows there without waiting for it either: they gave up on each after the
    query timeout, and left its backend waiting there for good."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c)
        n1 = c.nodes[1]
        n1.psql("alter system set synchronous_standby_names = 'ANY 1 (nobody)'")
        n1.psql('select pg_reload_conf()')
        c.daemons[1].wait_log('this node is the primary')
        since = {i: len(c.daemons[i].log_text()) for i in (2, 3)}
        waiting = ("select count(*) from pg_stat_activity where wait_event = 'SyncRep' "
                   "and application_name <> 'psql'")
        harness.stays_false(lambda: (not writable(n1) and 'node1 fenced while it saw every node') or
                            (n1.psql(waiting) != '0' and 'a daemon\'s backend waits for a synchronous standby'),
                            15, what='node1 fenced, or a daemon\'s write waiting for synchronous standbys')
        assert n1.psql('select last_seen > now() - interval \'10 s\' from repmgr_test.repl_nodes where id = 1',
                       db='pgbench') == 't', c.daemons[1].tail(30)
        for i in (2, 3):
            assert 'could not record monitoring' not in c.daemons[i].log_text()[since[i]:], c.daemons[i].tail(30)
        assert n1.psql('select count(*) from repmgr_test.repl_monitor '
                       "where last_monitor_time > now() - interval '5 s'", db='pgbench') != '0'


def test_partitioned_synchronous_primary_fences_itself():
    """As above, with node2 and node3 as node1's synchronous standbys (the chaos suite's
    isolate-primary found this): cut off, node1's own writes (its heartbeat) wait for
    them until the query timeout, which closes the daemon's session, and the fence that
    comes next fails on it. A failed fence is tried again at the next pass: node1 does not
    stay writable beside the primary promoted."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        host = harness.setup_partitioned(c)
        n1 = c.nodes[1]
        n1.psql("alter system set synchronous_standby_names = 'ANY 1 (node2, node3)'")
        n1.psql('select pg_reload_conf()')
        wait_until(lambda: n1.psql("select count(*) from pg_stat_replication where sync_state = 'quorum'") == '2',
                   what='node2 and node3 as quorum synchronous standbys')
        host.link(False)
        new_id = wait_until(lambda: one_promoted(c), timeout=60,
                            what='node2 or node3 to be promoted while node1 is cut off')
        wait_until(lambda: not writable(n1), timeout=30, what='node1 to fence itself')
        assert n1.psql('show default_transaction_read_only') == 'on'
        assert writable(c.nodes[new_id])
        # The lease fences over a session of its own, which no heartbeat stuck on the
        # synchronous standbys closed: before the promotion, by the margin.
        ahead = (logged_at(c.daemons[new_id], 'state electing -> promoting') -
                 logged_at(c.daemons[1], 'this primary is fenced (read-only)')).total_seconds()
        print(f'# synchronous: node1 fenced {ahead:.2f} s before node{new_id} started promoting', flush=True)
        assert ahead >= FENCE_MARGIN, f'node1 fenced {ahead:.3f} s before the promotion{c.daemons[1].tail(40)}'


# --------------------------------------------------------------------------------------
# 7. failover = manual never promotes; a promotion from outside ends the daemon (8)


def test_manual_never_promotes_and_exits_when_promoted():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        manual = {'failover': 'manual'}
        setup_three(c, {1: manual, 2: manual, 3: manual}, daemons=(2, 3))
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        n1.kill9()
        # Both declare it lost and decide not to promote ...
        for i in (2, 3):
            c.daemons[i].wait_log(r'-> primary_lost: primary node 1 is lost: .*failover = manual: not promoting',
                                  timeout=15)
        # ... and keep to it, while they run.
        harness.stays_false(lambda: not in_recovery(n2) or not in_recovery(n3), 5,
                            what='a promotion with failover = manual')
        for d in c.daemons.values():
            assert d.running(), d.tail()
        # Promoted by hand: node2's daemon exits with ERR_PROMOTED.
        pgrm('-f', c.confs[2], '--force', 'standby', 'promote', check=0)
        d2 = c.daemons[2]
        try:
            rc = d2.proc.wait(10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f'node2 promoted, its manual daemon still runs{d2.tail()}')
        assert rc == 8, f'exit code {rc}, expected 8 (ERR_PROMOTED){d2.tail()}'
        assert c.daemons[3].running(), c.daemons[3].tail()
        assert in_recovery(n3), 'node3 promoted too'


# --------------------------------------------------------------------------------------
# 8. priority 0 never promotes


def test_priority_zero_never_promotes():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c, {2: {'priority': 0}})
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        assert n1.psql('select priority from repmgr_test.repl_nodes where id = 2',
                       db='pgbench') == '0'
        with TwoPrimaries([n2, n3]) as guard:
            n1.kill9()
            wait_until(lambda: writable(n3), timeout=30, what='node3 to promote')
            wait_streaming_from(n2, n3, timeout=30)
        assert not guard.violations, guard.violations[:5]
        assert in_recovery(n2), 'node2 (priority 0) promoted'
        # node2 took part in the election and followed because of its priority.
        c.daemons[2].wait_log(r'-> following_new_primary: node 3 is the candidate \(.*\); '
                              r'this node has priority 0 and is never promoted', timeout=5)


def test_priority_zero_ahead_loses_no_acked_rows():
    """A priority-0 standby that holds acknowledged commits the others lack: nobody may
    promote behind it. node3 stops receiving WAL; with synchronous_standby_names = 'ANY 1
    (node2, node3)', node2 (priority 0) alone acknowledges 10 commits; node1 is killed.
    Both daemons hold the election and wait, saying that priority 0 is why, and keep
    waiting while they run."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c, {2: {'priority': 0}}, sync=True)
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        n1.psql('create table acks(i int)', db='pgbench')
        wait_until(lambda: n3.psql("select count(*) from pg_class where relname = 'acks'",
                                   db='pgbench') == '1', what='acks on node3')
        # node3's WAL receiver is pointed at a closed port: it receives nothing more.
        n3.psql("alter system set primary_conninfo = 'host=127.0.0.1 port=1 user=postgres'")
        n3.psql('select pg_reload_conf()')
        wait_until(lambda: n1.psql("select string_agg(application_name, ',') "
                                   "from pg_stat_replication") == 'node2',
                   what='node1 streaming to node2 only')
        for i in range(1, 11):
            n1.psql(f'insert into acks values ({i})', db='pgbench')  # acknowledged by node2
        assert n2.psql('select count(*) from acks', db='pgbench') == '10'
        assert n3.psql('select count(*) from acks', db='pgbench') == '0'
        n1.kill9()
        # Both hold the election and wait, for this reason: priority 0 is why nobody may
        # promote (node3 would lose the 10 rows node2 holds).
        reason = (r'failover: node 2 has more WAL than any node allowed to be promoted \(priority 0\): '
                  r'promoting node 3 would lose committed transactions')
        for i in (2, 3):
            c.daemons[i].wait_log(reason, timeout=20)
        # They keep to it, and keep deciding (the daemons run and hold new elections).
        elections = [c.daemons[i].log_text().count('failover: node 2 has more WAL') for i in (2, 3)]
        harness.stays_false(lambda: (writable(n2) and 'node2 (priority 0) promoted') or
                            (writable(n3) and 'node3 promoted with %s of 10 acknowledged rows' %
                             n3.psql('select count(*) from acks', db='pgbench')),
                            4, what='a promotion that loses committed transactions')
        for i, before in zip((2, 3), elections):
            assert c.daemons[i].running(), c.daemons[i].tail()
            assert c.daemons[i].log_text().count('failover: node 2 has more WAL') > before, c.daemons[i].tail()
        assert in_recovery(n2) and in_recovery(n3)


def proxied_primary(sb, c):
    """node1 registered at a proxy (harness.SqlLinkProxy, which can later cut every
    connection but replication ones) by name (localhost); node2 and node3 cloned through it
    at its address (127.0.0.1), streaming and registered. Returns node1 and the proxy."""
    n1 = make_primary(sb, scale=None)
    proxy = harness.SqlLinkProxy(sb, n1)
    c.nodes[1] = n1
    c.confs[1] = write_daemon_conf(sb, 1, n1, conninfo=f'host=localhost port={proxy.port} user=postgres dbname=pgbench')
    pgrm('-f', c.confs[1], 'master', 'register', check=0)
    for i in (2, 3):
        n = sb.new_instance(f'node{i}')
        c.nodes[i] = n
        c.confs[i] = write_daemon_conf(sb, i, n)
        pgrm('-f', c.confs[i], '-D', n.datadir, '-d', 'pgbench', '-p', proxy.port, '-U', 'postgres',
             '-R', 'postgres', 'standby', 'clone', '127.0.0.1', check=0)
        n.start()
        harness.wait_streaming(n)
        pgrm('-f', c.confs[i], 'standby', 'register', check=0)
    n1.psql('create table beat(i int)')
    return n1, proxy


@contextlib.contextmanager
def primary_busy(n1):
    """The primary alive and busy while the block runs: a write every 0.2 s into table beat
    of database postgres (not the daemons' database)."""
    beating = threading.Event()
    def beat():
        while not beating.is_set():
            n1.psql('insert into beat values (1)')
            beating.wait(0.2)
    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        yield
    finally:
        beating.set()
        beater.join(10)


def test_lost_sql_link_with_streaming_alive_never_promotes():
    """The daemons lose only their own link to the primary: node1 is registered, and its
    standbys cloned, at a proxy that then cuts every connection but replication ones. The
    daemons find node1 lost, but a sibling's WAL receiver still streams from it, so nobody
    promotes. node1 is registered by name (localhost), the standbys stream from its
    address (127.0.0.1): the same server, which the daemons must recognise."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        n1, proxy = proxied_primary(sb, c)
        for i in (2, 3):
            c.start_daemon(i)
        wait_until(lambda: n1.psql('select count(distinct standby_node) from repmgr_test.repl_monitor',
                                   db='pgbench') == '2', timeout=30, what='monitoring rows of both standbys')
        proxy.cut_sql()
        with primary_busy(n1):
            # The daemons find the primary lost, and hold back because a sibling hears it ...
            for i in (2, 3):
                c.daemons[i].wait_log('is lost', timeout=30)
            wait_until(lambda: 'still streams from the primary' in c.daemons[2].log_text() +
                       c.daemons[3].log_text(), timeout=30, what='a daemon to see a sibling streaming')
            # ... and keep holding back.
            harness.stays_false(lambda: not in_recovery(c.nodes[2]) or not in_recovery(c.nodes[3]), 3,
                                what='a standby promoted while the primary lived')
        assert writable(n1)
        for d in c.daemons.values():
            assert d.running(), d.tail()


def test_own_receiver_streaming_never_promotes():
    """A partial partition: the daemons lose their SQL link to node1 (a proxy cuts every
    connection but replication ones), and node3's WAL receiver is stopped, so node2 sees
    a majority and no sibling streaming from node1. But node2's own receiver still
    streams from node1, which reaches node2 and node3 directly, counts them toward its
    majority, and never fences: node2 must not promote (a second writable primary)."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        n1, proxy = proxied_primary(sb, c)
        n3 = c.nodes[3]
        n3.psql("alter system set primary_conninfo = ''")
        n3.psql('select pg_reload_conf()')
        wait_until(lambda: not harness.streaming(n3), timeout=15, what="node3's WAL receiver to stop")
        for i in (2, 3):
            c.start_daemon(i)
        wait_until(lambda: n1.psql('select count(distinct standby_node) from repmgr_test.repl_monitor',
                                   db='pgbench') == '2', timeout=30, what='monitoring rows of both standbys')
        proxy.cut_sql()
        with primary_busy(n1):
            c.daemons[2].wait_log("this node's WAL receiver still streams from the primary", timeout=40)
            harness.stays_false(lambda: not in_recovery(c.nodes[2]) or not in_recovery(n3), 3,
                                what='a standby promoted while the primary lived and counted it')
        assert writable(n1)
        for d in c.daemons.values():
            assert d.running(), d.tail()


def test_primary_refusing_the_daemons_lives():
    """node1 runs and takes writes but refuses the daemons and the WAL receivers
    (pg_hba.conf rejects database pgbench and replication over TCP; their sessions are
    ended): a server that answers, even to refuse, is alive. The daemons say so and
    never find it lost, though no sibling hears it any more; nobody promotes."""
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        setup_three(c, daemons=(2, 3))
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]
        hba = n1.datadir / 'pg_hba.conf'
        hba.write_text('host pgbench all 127.0.0.1/32 reject\nhost replication all 127.0.0.1/32 reject\n' +
                       hba.read_text())
        n1.psql('select pg_reload_conf()')
        n1.psql("select pg_terminate_backend(pid) from pg_stat_activity "
                "where (datname = 'pgbench' and backend_type = 'client backend') or backend_type = 'walsender'")
        wait_until(lambda: not harness.streaming(n2) and not harness.streaming(n3), timeout=15,
                   what='the WAL receivers to be refused')
        for i in (2, 3):
            c.daemons[i].wait_log(r'primary node 1 refused the connection \(authentication failed\), so it lives',
                                  timeout=20)
        harness.stays_false(lambda: not in_recovery(n2) or not in_recovery(n3) or
                            ('is lost' in c.daemons[2].log_text() + c.daemons[3].log_text() and 'declared lost'),
                            5, what='node1 taken for lost')
        assert writable(n1)
        for d in c.daemons.values():
            assert d.running(), d.tail()


# --------------------------------------------------------------------------------------
# 9. Two nodes: no majority, no promotion


def test_two_nodes_never_promote():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        primary_and_standby(c)
        d2 = c.start_daemon(2)
        wait_until(lambda: c.nodes_sql() == '1|primary|t\n2|standby|t', what='node2 registered')
        wait_until(lambda: c.nodes[1].psql('select count(*) > 0 from repmgr_test.repl_monitor',
                                           db='pgbench') == 't', what='a monitoring row')
        c.nodes[1].kill9()
        d2.wait_log('not a majority', timeout=20)
        harness.stays_false(lambda: not in_recovery(c.nodes[2]), 3, what='node2 promoted in a two-node cluster')
        assert d2.running(), d2.tail()


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
