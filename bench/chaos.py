#!/usr/bin/env python3
"""Benchmark: the chaos suite's long run (test/chaos/chaos.py), many faults in a row.

    python3 bench/chaos.py [--rounds 50] [--quorum 2] [--faults a,b,...] [--seed N] [--dcs etcd]

Five real servers, each with its repmgrd, each on its own host (a network namespace on a
bridge), set up once; a client outside them inserting unique ids through a multi-host
connection string (target_session_attrs=read-write) with synchronous replication (ANY
QUORUM of the five node names, in every node's own postgresql.conf), and a sampler asking
every node every 50 ms whether a write would commit there (see chaos.py's docstring).
Then --rounds faults, one after the other: every fault once in a random order, again and
again (--seed makes the order and the faults' random choices repeatable). The daemons
keep harness.DAEMON_FAST's timers (a 3 s failover window); fsync stays on (the CI
round runs with fsync = off). --dcs etcd: the daemons hold the leader key in a
three-member etcd on hosts of the bridge (chaos.ChaosCluster says which faults cut a node
off from it), and chaos.KNOWN_FAILURES_ETCD excuses failures instead.

Prints one line per round (fault, failover, unavailability, split-brain instants, lost
acknowledged writes, the operator's actions and the state that asked for each), then
faults injected, failovers, split-brain instants, lost acknowledged writes, operator
actions, and unavailability per fault (median, max). Exit status 1 when a failure not
excused by the known failures was found (lost acknowledged writes never are); it never
fails on a timing. Root only.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test' / 'chaos'))
import chaos  # noqa: E402
from benchlib import check_binary, load_average  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--rounds', type=int, default=50, help='faults injected (default 50)')
    ap.add_argument('--quorum', type=int, default=2,
                    help='synchronous_standby_names = ANY QUORUM (...) (default 2, a majority of five)')
    ap.add_argument('--faults', default=','.join(chaos.FAULTS),
                    help='comma-separated faults to cycle through (default: all)')
    ap.add_argument('--seed', type=int, default=None, help='random seed (default: from the clock)')
    ap.add_argument('--dcs', choices=('none', 'etcd'), default='none',
                    help='none (default): the daemons decide by the nodes they see; etcd: by the leader key')
    args = ap.parse_args()
    check_binary()
    faults = args.faults.split(',')
    unknown = [f for f in faults if f not in chaos.FAULTS]
    if unknown:
        sys.exit(f'unknown fault "{unknown[0]}": one of {", ".join(chaos.FAULTS)}')
    seed = args.seed if args.seed is not None else int(time.time())
    random.seed(seed)
    print(f'# chaos: {args.rounds} rounds of {", ".join(faults)}; dcs = {args.dcs}; seed {seed}; '
          f'load {load_average()}',
          flush=True)
    t0 = time.monotonic()
    run = chaos.Run(short=False, quorum=args.quorum, fsync=True, dcs=args.dcs)
    order: list = []
    try:
        run.start()
        for _ in range(args.rounds):
            if not order:
                order = random.sample(faults, len(faults))
            run.round(order.pop())
    finally:
        run.stop()
        failures = run.summary()
    print(f'# {time.monotonic() - t0:.0f} s in all; load {load_average()}', flush=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
