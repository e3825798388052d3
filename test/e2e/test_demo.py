"""pgrm demo: the README's main job brings up a primary and two streaming standbys,
built by pgrm's own clone and register, with a repmgrd on each node that fills
repl_status; stop ends the daemons first and removes exactly what it made."""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import pgrm, wait_until  # noqa: E402


def test_demo_start_status_stop():
    with harness.Sandbox() as sb:
        demo_dir = sb.path('demo')
        port = harness.free_port(20000, 30000)
        try:
            r = pgrm('demo', '--dir', demo_dir, '--port', port, persona='pgrm', check=0, timeout=300)
            assert 'demo cluster "demo" is up' in r.stdout, r.stdout

            doc = json.loads(pgrm('demo', 'status', '--dir', demo_dir, '--json', persona='pgrm', check=0).stdout)
            nodes = {n['name']: n for n in doc['data']['nodes']}
            assert nodes['node1']['role_found'] == 'primary', nodes
            for name in ('node2', 'node3'):
                assert nodes[name]['role_found'] == 'standby', nodes[name]
                assert nodes[name]['streaming'] is True, nodes[name]
                assert nodes[name]['upstream_node_id'] == 1, nodes[name]

            # A repmgrd per node, and the standbys' lag in the seed's view.
            pids = doc['data']['repmgrd_pids']
            assert sorted(pids) == ['node1', 'node2', 'node3'] and all(pids.values()), pids
            for pid in pids.values():
                os.kill(pid, 0)
            primary = harness.Instance('node1', port, demo_dir / 'node1', demo_dir / 'node1.log', demo_dir)
            wait_until(lambda: primary.psql('select count(*) from repmgr_demo.repl_status',
                                            db='pgbench') == '2',
                       timeout=30, what='repl_status rows for both standbys')

            # The switchover the demo prints: node2 the primary, node1 and node3 its standbys.
            line = next(l for l in r.stdout.splitlines() if l.startswith('switchover:'))
            switchover = pgrm(*line.split(': repmgr ', 1)[1].split(), check=0)
            assert 'switchover' in switchover.stdout, harness.output(switchover)

            def switched():
                doc = json.loads(pgrm('demo', 'status', '--dir', demo_dir, '--json', persona='pgrm').stdout)
                nodes = {n['name']: n for n in doc['data']['nodes']}
                return nodes['node2']['role_found'] == 'primary' and all(
                    nodes[s]['streaming'] and nodes[s]['upstream_name'] == 'node2' for s in ('node1', 'node3'))
            wait_until(switched, timeout=60, what='node1 and node3 to stream from node2 after the switchover')

            # A second demo in the same place is refused, and changes nothing.
            again = pgrm('demo', '--dir', demo_dir, persona='pgrm', check=1)
            assert 'already exists' in again.stderr, again.stderr
        finally:
            stop = pgrm('demo', 'stop', '--dir', demo_dir, persona='pgrm')
        assert stop.returncode == 0, stop.stderr
        assert 'stopped repmgrd for node1' in stop.stdout, stop.stdout
        for pid in pids.values():
            wait_until(lambda pid=pid: not Path(f'/proc/{pid}').exists(), timeout=10,
                       what=f'repmgrd pid {pid} to exit')
        assert not demo_dir.exists()


def test_demo_failover_then_rejoin():
    """The user story of issue 10: node1 stopped as the demo says, the daemons fail over,
    and the rejoin command the demo prints brings node1 back as a standby of the new
    primary, on its own port (a rewind used to give it node2's, and it did not start)."""
    with harness.Sandbox() as sb:
        demo_dir = sb.path('demo')
        port = harness.free_port(20000, 30000)
        try:
            r = pgrm('demo', '--dir', demo_dir, '--port', port, persona='pgrm', check=0, timeout=300)
            rejoin = next(l for l in r.stdout.splitlines() if l.startswith('rejoin:'))
            argv = rejoin.split(': repmgr ', 1)[1].split()
            harness.run_as_pg([harness.pg_bin('pg_ctl'), '-D', demo_dir / 'node1', '-m', 'immediate', 'stop'])

            def nodes():
                doc = json.loads(pgrm('demo', 'status', '--dir', demo_dir, '--json', persona='pgrm').stdout)
                return {n['name']: n for n in doc['data']['nodes']}
            new = wait_until(lambda: [n for n in ('node2', 'node3') if nodes()[n]['role_found'] == 'primary'],
                             timeout=120, what='the daemons to promote node2 or node3')[0]

            r = pgrm(*argv, check=0)
            assert 'is a standby of' in r.stdout, harness.output(r)
            node1 = wait_until(lambda: (lambda n: n if n['streaming'] else None)(nodes()['node1']),
                               what='node1 to stream again')
            assert node1['role_found'] == 'standby' and node1['upstream_name'] == new, node1
            inst = harness.Instance('node1', port, demo_dir / 'node1', demo_dir / 'node1.log', demo_dir)
            assert inst.psql('show port') == str(port) and inst.is_in_recovery()
        finally:
            pgrm('demo', 'stop', '--dir', demo_dir, persona='pgrm')


def test_two_demos_side_by_side():
    """Two demos (both clusters are named "demo") in two directories: each gets its three
    daemons; one daemon per node means per server, not per node id and cluster name."""
    with harness.Sandbox() as sb:
        dirs = [sb.path('a'), sb.path('b')]
        try:
            for d in dirs:
                port = harness.free_port(20000, 30000)
                pgrm('demo', '--dir', d, '--port', port, persona='pgrm', check=0, timeout=300)
            for d in dirs:
                doc = json.loads(pgrm('demo', 'status', '--dir', d, '--json', persona='pgrm',
                                      check=0).stdout)
                pids = doc['data']['repmgrd_pids']
                assert all(pids.values()), f'{d}: {pids}'
        finally:
            for d in dirs:
                pgrm('demo', 'stop', '--dir', d, persona='pgrm')


def test_demo_stop_refuses_a_directory_it_did_not_make():
    with harness.Sandbox() as sb:
        other = sb.path('not-a-demo')
        other.mkdir()
        (other / 'keep.txt').write_text('mine')
        r = pgrm('demo', 'stop', '--dir', other, persona='pgrm', check=1)
        assert 'no demo cluster' in r.stderr, r.stderr
        assert (other / 'keep.txt').read_text() == 'mine'


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
