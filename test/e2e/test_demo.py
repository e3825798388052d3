"""pgrm demo: the README's main job brings up a primary and two streaming standbys,
built by pgrm's own clone and register, and stop removes exactly what it made."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import pgrm  # noqa: E402


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

            # A second demo in the same place is refused, and changes nothing.
            again = pgrm('demo', '--dir', demo_dir, persona='pgrm', check=1)
            assert 'already exists' in again.stderr, again.stderr
        finally:
            stop = pgrm('demo', 'stop', '--dir', demo_dir, persona='pgrm')
        assert stop.returncode == 0, stop.stderr
        assert not demo_dir.exists()


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
