#!/usr/bin/env python3
"""Benchmark: rejoining a failed primary with a forced `repmgr standby clone` (pg_rewind
when possible) against a full clone of the new primary, in the same run.

    python3 bench/rejoin.py [--scale 100] [--wal-keep-size 256MB] [--rounds 3]
                            [--old-writes 200] [--new-writes 500]

Steps: node1 gets `pgbench -i -s SCALE` and is registered as master; node2 is cloned from
it, started, seen streaming and registered as standby. Failover: node1 stopped (fast),
`repmgr -f conf2 standby promote`. Then node1 is started alone (still a primary) and
takes `pgbench -t OLD_WRITES -c 2` on the lost timeline, and is stopped; node2 takes
`pgbench -t NEW_WRITES`. node1's diverged data directory is saved (cp -a); then ROUNDS
times, alternating which goes first, each into a freshly restored copy / empty directory:

  rejoin: repmgr -D dir1 -d pgbench -h 127.0.0.1 -p P2 -U postgres --force --json standby clone
          (bytes: data.bytes_copied, which for pg_rewind is its "need to copy" figure)
  full:   repmgr -D <empty dir> ... standby clone   (pg_basebackup; bytes: du -sb of the copy)

Finally the last rejoined node1 is started to check that it comes up as a standby of node2,
streams and replays a new row (sanity). Prints each round, the method, the median times and
sizes and their ratios against targets.

    python3 bench/rejoin.py --debian [--scale 100] [--rounds 3] ...   (root, postgresql-common)

The same on two clusters made with pg_createcluster (configuration in /etc/postgresql,
started with pg_ctlcluster, which repmgr.conf names in service_*_command): node2 stopped,
node1 takes OLD_WRITES transactions alone and is killed -9 (a crash: pg_rewind needs crash
recovery first, which must read /etc's postgresql.conf), node2 started and promoted, takes
NEW_WRITES. Each round, from the same saved state of both: `repmgr node rejoin` (pg_rewind,
start, replay of a fresh write) against `repmgr standby clone` into node1's data
directory, removed and cloned again (pg_basebackup), then pg_ctlcluster start and replay of a
fresh write.
It prints; it never fails on a timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (check_binary, du_bytes, fmt_bytes, harness, make_primary, median,  # noqa: E402
                      parse_json, pgbench, pgrm, remove_tree, streaming, timed, wait_streaming,
                      wait_until, write_conf)


def changed_files(root: Path, since: float) -> dict:
    """Bytes and counts of files under root modified at or after `since`, by kind.
    pg_rewind copies WAL segments, fsm/vm forks and other non-relation files whole, but
    only patches a relation's main fork (its whole size is listed: an upper bound)."""
    kinds = defaultdict(lambda: [0, 0])
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            try:
                st = p.lstat()
            except OSError:
                continue
            if st.st_mtime < since:
                continue
            rel = p.relative_to(root).parts
            base = f.split('.')[0]
            if rel[0] == 'pg_wal':
                kind = 'pg_wal (copied whole)'
            elif rel[0] in ('base', 'global') and base.isdigit():
                kind = 'relation main forks (patched; whole size shown)'
            elif rel[0] in ('base', 'global') and base.split('_')[0].isdigit():
                kind = 'fsm/vm forks (copied whole)'
            else:
                kind = 'other files (copied whole)'
            kinds[kind][0] += st.st_size
            kinds[kind][1] += 1
    return dict(kinds)


def report(args, methods: list, rejoin_times: list, full_times: list, rejoin_bytes_all: list,
           full_bytes_all: list):
    rejoin_s, full_s = median(rejoin_times), median(full_times)
    rejoin_bytes, full_bytes = median(rejoin_bytes_all), median(full_bytes_all)
    print(f'method used: {"/".join(sorted(set(methods)))}')
    print(f'rejoin seconds (median of {args.rounds}): {rejoin_s:.2f}')
    print(f'full-clone seconds (median of {args.rounds}): {full_s:.2f}')
    print(f'ratio time rejoin/full: {rejoin_s / full_s:.2f} (target <= 0.4)')
    print(f'rejoin bytes: {int(rejoin_bytes)}')
    print(f'full bytes: {int(full_bytes)}')
    print(f'ratio bytes rejoin/full: {rejoin_bytes / full_bytes:.2f} (target <= 0.25)')


def debian_case(args) -> int:
    """Rejoin after a crash on pg_createcluster clusters, against a full re-clone."""
    if not harness.DebianInstance.available():
        sys.exit('--debian needs root and postgresql-common (pg_createcluster)')
    version = harness.find_pg_bindir().parent.name
    node1 = harness.DebianInstance('pgrm_bench_n1', harness.free_port(), version)
    node2 = harness.DebianInstance('pgrm_bench_n2', harness.free_port(), version)
    try:
        with harness.Sandbox(prefix='pgrm-bench-rejoin-') as sb:
            confs = {}
            for i, n in ((1, node1), (2, node2)):
                n.create({'wal_keep_size': args.wal_keep_size})
                confs[i] = write_conf(sb, i, n, cluster='bench', **{
                    f'service_{a}_command': f'pg_ctlcluster {version} {n.name} {a}'
                    for a in ('start', 'stop', 'restart', 'reload')})
            node1.start()
            node1.psql('create database pgbench')
            load_s, _ = timed(pgbench, node1, '-i', '-s', str(args.scale), '-q', timeout=3600)
            node1.psql('checkpoint')
            print(f'# node1 (pg_createcluster {version} {node1.name}): pgbench -i -s {args.scale} in '
                  f'{load_s:.1f} s, data directory {fmt_bytes(du_bytes(node1.datadir))}', flush=True)
            pgrm('-f', confs[1], 'master', 'register', check=0)
            pgrm('-D', node2.datadir, '-d', 'pgbench', '-h', '127.0.0.1', '-p', node1.port, '-U', 'postgres',
                 '--force', 'standby', 'clone', check=0, timeout=3600)
            node2.start()
            wait_streaming(node2, timeout=120)
            pgrm('-f', confs[2], 'standby', 'register', check=0)

            # Divergence: node1 writes alone and crashes; node2 is promoted and writes.
            node2.stop()
            pgbench(node1, '-n', '-t', str(args.old_writes), '-c', '2', timeout=3600)
            node1.kill9()
            node2.start()
            pgrm('-f', confs[2], 'standby', 'promote', check=0)
            pgbench(node2, '-n', '-t', str(args.new_writes), timeout=3600)
            print(f'# diverged: node1 crashed after {args.old_writes}x2 transactions of its own, node2 '
                  f'promoted and took {args.new_writes}', flush=True)

            print(f'# node2 (source) at rejoin: data directory {fmt_bytes(du_bytes(node2.datadir))}, '
                  f'pg_wal {fmt_bytes(du_bytes(node2.datadir / "pg_wal"))}; node1 (target) pg_wal '
                  f'{fmt_bytes(du_bytes(node1.datadir / "pg_wal"))}', flush=True)
            saved1, saved2 = sb.root / 'node1.crashed', sb.root / 'node2.promoted'
            subprocess.run(['cp', '-a', str(node1.datadir), str(saved1)], check=True)
            node2.stop()
            subprocess.run(['cp', '-a', str(node2.datadir), str(saved2)], check=True)

            def restore(inst: harness.DebianInstance, saved: Path):
                if inst.is_running():
                    inst.stop()
                shutil.rmtree(inst.datadir)
                subprocess.run(['cp', '-a', str(saved), str(inst.datadir)], check=True)

            def replays_fresh_write(timeout: float = 600):
                node2.psql('create table if not exists bench_probe(x int); insert into bench_probe values (1)',
                           db='pgbench')
                lsn = node2.psql('select pg_current_wal_lsn()')
                wait_until(lambda: node1.psql(f"select pg_last_wal_replay_lsn() >= '{lsn}'") == 't',
                           timeout=timeout, what='node1 to replay a fresh write of node2')

            def prepare():
                restore(node1, saved1)
                restore(node2, saved2)
                node2.start()
                os.sync()

            def do_rejoin() -> float:
                prepare()
                secs, proc = timed(pgrm, '-f', confs[1], '--json', 'node', 'rejoin', '-h', '127.0.0.1',
                                   '-p', node2.port, timeout=3600)
                doc = parse_json(proc, 'node rejoin --json', error=SystemExit)
                if proc.returncode != 0:
                    raise SystemExit(f'node rejoin failed: exit code {proc.returncode}\n{proc.stderr}')
                methods.append(doc['data']['method'])
                rejoin_bytes_all.append(int(doc['data']['bytes_copied']))
                if doc['data'].get('rewind_error'):
                    print(f'# rejoin: pg_rewind failed: {doc["data"]["rewind_error"]}')
                node1.stop()
                return secs

            def do_full() -> float:
                prepare()
                # A re-clone: node1's data directory removed (a --force over it would rewind).
                t0 = time.monotonic()
                shutil.rmtree(node1.datadir)
                pgrm('-D', node1.datadir, '-d', 'pgbench', '-h', '127.0.0.1', '-p', node2.port, '-U', 'postgres',
                     'standby', 'clone', check=0, timeout=3600)
                node1.start()
                replays_fresh_write()
                secs = time.monotonic() - t0
                full_bytes_all.append(du_bytes(node1.datadir))
                node1.stop()
                return secs

            methods, rejoin_bytes_all, full_bytes_all = [], [], []
            rejoin_times, full_times = [], []
            for i in range(args.rounds):
                order = ['rejoin', 'full'] if i % 2 == 0 else ['full', 'rejoin']
                got = {what: (do_rejoin() if what == 'rejoin' else do_full()) for what in order}
                rejoin_times.append(got['rejoin'])
                full_times.append(got['full'])
                print(f'round {i + 1} ({order[0]} first): rejoin {got["rejoin"]:.2f} s ({methods[-1]}, '
                      f'{rejoin_bytes_all[-1]} bytes), full clone {got["full"]:.2f} s ({full_bytes_all[-1]} bytes), '
                      f'ratio {got["rejoin"] / got["full"]:.2f}', flush=True)
            report(args, methods, rejoin_times, full_times, rejoin_bytes_all, full_bytes_all)
    finally:
        node1.drop()
        node2.drop()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--scale', type=int, default=100, help='pgbench -i scale (default 100)')
    ap.add_argument('--wal-keep-size', default='256MB', help="wal_keep_size (default '256MB')")
    ap.add_argument('--old-writes', type=int, default=200,
                    help='pgbench -t on the old primary, 2 clients (default 200)')
    ap.add_argument('--new-writes', type=int, default=500,
                    help='pgbench -t on the new primary (default 500)')
    ap.add_argument('--rounds', type=int, default=3,
                    help='timed rounds of rejoin + full clone, alternating order (default 3)')
    ap.add_argument('--debian', action='store_true',
                    help='on two pg_createcluster clusters, rejoin after a crash (node rejoin)')
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error('--rounds must be at least 1')
    check_binary()
    t_start = time.monotonic()
    if args.debian:
        debian_case(args)
        print(f'# done in {time.monotonic() - t_start:.0f} s (scale {args.scale}, Debian clusters)', flush=True)
        return 0

    with harness.Sandbox(prefix='pgrm-bench-rejoin-') as sb:
        # ---- node1: primary with data, registered.
        node1 = make_primary(sb, 'node1', scale=None,
                             extra_conf={'wal_keep_size': args.wal_keep_size})
        load_s, _ = timed(pgbench, node1, '-i', '-s', str(args.scale), '-q', timeout=3600)
        node1.psql('checkpoint')
        print(f'# node1: PostgreSQL {node1.psql("show server_version")}, pgbench -i -s '
              f'{args.scale} in {load_s:.1f} s, data directory {fmt_bytes(du_bytes(node1.datadir))}, '
              f'wal_keep_size {node1.psql("show wal_keep_size")}', flush=True)
        conf1 = write_conf(sb, 1, node1, cluster='bench')
        pgrm('-f', conf1, 'master', 'register', check=0)

        # ---- node2: cloned, streaming, registered.
        node2 = sb.new_instance('node2')
        s, _ = timed(pgrm, '-D', node2.datadir, '-d', 'pgbench', '-h', '127.0.0.1', '-p', node1.port,
                     '-U', 'postgres', 'standby', 'clone', check=0, timeout=3600)
        print(f'# node2 cloned from node1 in {s:.1f} s', flush=True)
        node2.start()
        wait_streaming(node2, timeout=120)
        conf2 = write_conf(sb, 2, node2, cluster='bench')
        pgrm('-f', conf2, 'standby', 'register', check=0)

        # ---- failover.
        node1.stop('fast')
        wait_until(lambda: not streaming(node2), timeout=60, what='node2 to stop streaming')
        s, _ = timed(pgrm, '-f', conf2, 'standby', 'promote', check=0)
        assert not node2.is_in_recovery(), 'node2 still in recovery after promote'
        tl2 = node2.psql('select timeline_id from pg_control_checkpoint()')
        print(f'# failover: node1 stopped, node2 promoted in {s:.1f} s (timeline {tl2})', flush=True)

        # ---- writes on the old primary's lost timeline, then on the new primary.
        node1.start()
        assert not node1.is_in_recovery(), 'node1 came up in recovery, expected a primary'
        pgbench(node1, '-n', '-t', str(args.old_writes), '-c', '2', timeout=3600)
        lost_lsn = node1.psql('select pg_current_wal_lsn()')
        node1.stop('fast')
        pgbench(node2, '-n', '-t', str(args.new_writes), timeout=3600)
        print(f'# diverged: node1 wrote {args.old_writes}x2 pgbench transactions on timeline 1 '
              f'(up to {lost_lsn}), node2 {args.new_writes} on timeline {tl2} (now at '
              f'{node2.psql("select pg_current_wal_lsn()")})', flush=True)
        src_wal = du_bytes(node2.datadir / 'pg_wal')
        src_total = du_bytes(node2.datadir)
        print(f'# node2 (source) at rejoin: data directory {fmt_bytes(src_total)}, '
              f'pg_wal {fmt_bytes(src_wal)}', flush=True)

        # Both sides are saved once (node2 stopped cleanly for it). Before every timed
        # operation node2 is restored and restarted, and before every rejoin node1 is
        # restored, all untimed: each operation starts from the same state. Without this,
        # each full clone (a checkpoint and a WAL switch on node2) would add WAL to node2's
        # pg_wal, which pg_rewind copies whole, and later rejoins would copy more.
        saved1 = sb.root / 'node1.diverged'
        saved2 = sb.root / 'node2.promoted'
        subprocess.run(['cp', '-a', str(node1.datadir), str(saved1)], check=True)
        node2.stop('fast')
        subprocess.run(['cp', '-a', str(node2.datadir), str(saved2)], check=True)

        def restore(inst: harness.Instance, saved: Path, start: bool):
            if inst.is_running():
                inst.stop('fast')
            shutil.rmtree(inst.datadir)
            subprocess.run(['cp', '-a', str(saved), str(inst.datadir)], check=True)
            if start:
                inst.start()

        def restore_node1():
            restore(node1, saved1, start=False)
            restore(node2, saved2, start=True)

        first = {}

        def do_rejoin() -> float:
            restore_node1()
            os.sync()  # earlier write-back out of the timed window
            wall0 = time.time() - 1  # mtime granularity margin
            secs, proc = timed(pgrm, '-D', node1.datadir, '-d', 'pgbench', '-h', '127.0.0.1',
                               '-p', node2.port, '-U', 'postgres', '--force', '--json',
                               'standby', 'clone', timeout=3600)
            if proc.returncode != 0:
                raise SystemExit(f'rejoin failed: exit code {proc.returncode}\n--- stdout ---\n'
                                 f'{proc.stdout}--- stderr ---\n{proc.stderr}')
            doc = parse_json(proc, 'forced standby clone --json', error=SystemExit)
            methods.append(doc['data']['method'])
            rejoin_bytes_all.append(int(doc['data']['bytes_copied']))
            if 'touched' not in first:
                first['touched'] = changed_files(node1.datadir, wall0)
                for w in doc.get('warnings') or []:
                    print(f'# rejoin warning: {w}')
            if doc['data'].get('rewind_error'):
                print(f'# rejoin: pg_rewind failed: {doc["data"]["rewind_error"]}')
            return secs

        def do_full() -> float:
            full_dir = sb.root / 'fullclone'
            restore(node2, saved2, start=True)
            os.sync()
            secs, _ = timed(pgrm, '-D', full_dir, '-d', 'pgbench', '-h', '127.0.0.1',
                            '-p', node2.port, '-U', 'postgres', 'standby', 'clone',
                            check=0, timeout=3600)
            if 'full_bytes' not in first:
                first['full_bytes'] = du_bytes(full_dir)
                first['full_wal'] = du_bytes(full_dir / 'pg_wal')
            full_bytes_all.append(du_bytes(full_dir))
            remove_tree(full_dir)
            return secs

        methods, rejoin_bytes_all, full_bytes_all = [], [], []
        rejoin_times, full_times = [], []
        for i in range(args.rounds):
            order = ['rejoin', 'full'] if i % 2 == 0 else ['full', 'rejoin']
            got = {}
            for what in order:
                got[what] = do_rejoin() if what == 'rejoin' else do_full()
            rejoin_times.append(got['rejoin'])
            full_times.append(got['full'])
            print(f'round {i + 1} ({order[0]} first): rejoin {got["rejoin"]:.2f} s '
                  f'({methods[-1]}, {rejoin_bytes_all[-1]} bytes), full clone {got["full"]:.2f} s '
                  f'({full_bytes_all[-1]} bytes), ratio {got["rejoin"] / got["full"]:.2f}', flush=True)
        touched, full_wal = first['touched'], first['full_wal']

        if order[-1] != 'rejoin':
            # node2 was restored after the last rejoin: rejoin once more (untimed), so node1
            # follows the node2 that runs now.
            do_rejoin()

        # ---- sanity: node1 comes up as a standby of node2 and replays a new row.
        node1.start()
        sane = []
        sane.append(('in recovery', node1.is_in_recovery()))
        try:
            wait_streaming(node1, timeout=60)
            sane.append(('streaming', True))
        except AssertionError as e:
            sane.append(('streaming', False))
            print(f'# {e}')
        node2.psql('create table bench_rejoin_probe(x int); insert into bench_rejoin_probe values (42)',
                   db='pgbench')
        try:
            wait_until(lambda: node1.psql('select x from bench_rejoin_probe', db='pgbench') == '42',
                       timeout=60, what='node1 to replay the probe row')
            sane.append(('replays', True))
        except AssertionError as e:
            sane.append(('replays', False))
            print(f'# {e}')
        sane.append(('timeline ' + tl2, node1.psql('select received_tli from pg_stat_wal_receiver') == tl2))
        node1.stop('fast')

        # ---- report.
        print(f'# files written by the rejoin in node1 (source pg_wal was {fmt_bytes(src_wal)}):')
        for kind, (nbytes, count) in sorted(touched.items()):
            print(f'#   {kind}: {count} files, {fmt_bytes(nbytes)}')
        print(f'# full clone: pg_wal {fmt_bytes(full_wal)} of {fmt_bytes(first["full_bytes"])}')
        print(f'sanity (node1 after rejoin): ' + ', '.join(f'{k} {"ok" if v else "FAILED"}' for k, v in sane))
        report(args, methods, rejoin_times, full_times, rejoin_bytes_all, full_bytes_all)
    print(f'# done in {time.monotonic() - t_start:.0f} s (scale {args.scale})', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
