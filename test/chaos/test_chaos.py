"""One round of every fault of the chaos suite (chaos.py) against five real servers and
their daemons, in CI, without a dcs and with dcs = etcd (meson runs each test apart:
chaos, chaos-etcd). bench/chaos.py runs the long one (--rounds N [--dcs etcd]).

PGRM_CHAOS_FAULTS=a,b (and PGRM_CHAOS_ROUNDS=N, default 1) runs only those faults, N
rounds each, with the CI round's timings: a fault's fix is tested by its round alone."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chaos  # noqa: E402
import harness  # noqa: E402  (chaos puts test/e2e on the path)


def _faults() -> list:
    chosen = [f for f in os.environ.get('PGRM_CHAOS_FAULTS', '').split(',') if f]
    unknown = [f for f in chosen if f not in chaos.FAULTS]
    assert not unknown, f'unknown fault "{unknown[0]}": one of {", ".join(chaos.FAULTS)}'
    return (chosen or list(chaos.FAULTS)) * int(os.environ.get('PGRM_CHAOS_ROUNDS', '1'))


def _every_fault_once(dcs: str):
    # fsync = off for this short round only: no fault here crashes the OS, so the page
    # cache keeps every write the servers made; bench/chaos.py keeps fsync on.
    run = chaos.Run(short=True, fsync=False, dcs=dcs)
    try:
        run.start()
        for fault in _faults():
            run.round(fault)
    finally:
        run.stop()
        unknown = run.summary()
    assert not unknown, '\n'.join(f'round {r.number} {r.fault}: {f}' for r, f in unknown)


def test_every_fault_once():
    _every_fault_once('none')


def test_every_fault_once_with_etcd():
    """The same faults and checkers with dcs = etcd: the leader key in a three-member etcd
    on hosts of the bridge (chaos.ChaosCluster says which faults cut a node off from it)."""
    _every_fault_once('etcd')


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
