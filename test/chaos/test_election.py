#!/usr/bin/env python3
"""The election with nine standbys: one primary and nine standbys, each with its repmgrd,
each on its own host (chaos.ChaosCluster on a bridge, lightweight servers), and kill -9 of
the primary's postmaster.

Before the kill the standbys' WAL positions are made to differ: the WAL receivers of
node2..node5 are stopped (primary_conninfo emptied, which PostgreSQL applies on reload),
rows are committed, then those of every other standby but node7, and rows committed again
(synchronous_standby_names = ANY 1: node7 acknowledges them). node7 alone has the newest
WAL, and is neither the lowest id nor distinguished by priority: the election must find it
by WAL position. Then:

  - exactly one node is promoted, node7, and no other node accepts a write in any 50 ms
    sample from the kill to the end (chaos.Sampler, every node asked at the same instant);
  - every other standby, those that stopped streaming included, follows node7 without an
    operator.

It prints the time from the kill to node7's first accepted write and to all nine standbys
streaming from it.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chaos  # noqa: E402
import harness  # noqa: E402  (chaos puts test/e2e on the path)
from harness import wait_until  # noqa: E402

STANDBYS = 9
WINNER = 7


def stop_receivers(nodes: list):
    for n in nodes:
        n.inst.psql("alter system set primary_conninfo = ''", timeout=10)
        n.inst.psql('select pg_reload_conf()', timeout=10)
    for n in nodes:
        wait_until(lambda: n.inst.psql('select count(*) from pg_stat_wal_receiver', timeout=10) == '0',
                   what=f"{n.name}'s WAL receiver to stop")


def test_nine_standbys_kill_primary():
    t0 = time.monotonic()
    with harness.Sandbox(prefix='pgrm-election-') as sb:
        c = chaos.ChaosCluster(sb, chaos.Timings(short=True), count=STANDBYS + 1, quorum=1, fsync=False)
        c.setup()
        built = time.monotonic() - t0
        primary, winner = c.nodes[0], c.nodes[WINNER - 1]
        sampler = chaos.Sampler(c.nodes)
        try:
            # Three WAL positions among the standbys: node2..5 behind, the others but
            # node7 further, node7 furthest.
            primary.inst.psql('create table election(x int)', db='pgbench')
            stop_receivers(c.nodes[1:5])
            primary.inst.psql('insert into election values (1)', db='pgbench', timeout=30)
            stop_receivers([n for n in c.nodes[5:] if n is not winner])
            primary.inst.psql('insert into election values (2)', db='pgbench', timeout=30)
            wait_until(lambda: winner.inst.psql('select count(*) from election', db='pgbench') == '2',
                       what='node7 to replay both rows')
            positions = {n.name: n.inst.psql('select pg_last_wal_receive_lsn()') for n in c.nodes[1:]}
            print(f'# standbys received up to: {positions}', flush=True)

            killed = time.monotonic()
            primary.inst.kill9()
            promoted = wait_until(lambda: next(iter(sampler.latest_writers() - {primary}), None),
                                  timeout=60, interval=0.05, what='a standby to accept writes')
            first_write = time.monotonic() - killed
            assert promoted is winner, f'{promoted.name} was promoted, not node7 (WAL: {positions})'
            standbys = [n for n in c.nodes[1:] if n is not winner]
            wait_until(lambda: all(c.upstream_port(n) == winner.inst.port for n in standbys),
                       timeout=90, interval=0.5,
                       what='every other standby to stream from node7: ' +
                            ', '.join(f'{n.name} {chaos._daemon_state(n) or "-"}' for n in standbys))
            converged = time.monotonic() - killed
            ended = time.monotonic()
        finally:
            sampler.stop()
            if sys.exc_info()[0] is not None:
                c.dc.dump()
            c.dc.close()   # the daemons first: the servers then stop without them reconnecting

        brain = sampler.split_brain(killed, ended)
        assert not brain, f'{len(brain)} samples with two writers, the first: ' + \
            ', '.join(n.name for n in brain[0][1])
        writers = {n for k in range(sampler.tick_of(killed) + 1, sampler.tick_of(ended) + 1)
                   for n in sampler.writers_at(k)}
        assert writers == {winner}, f'nodes that accepted writes after the kill: {sorted(map(str, writers))}'
        assert winner.inst.psql('select count(*) from election', db='pgbench') == '2'
        print(f'# 1 primary + {STANDBYS} standbys built in {built:.0f} s; after kill -9 of node1: node7 '
              f'took writes after {first_write:.1f} s, all {STANDBYS - 1} others streamed from it after '
              f'{converged:.1f} s; {time.monotonic() - t0:.0f} s in all', flush=True)


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
