#!/usr/bin/env python3
"""End to end: the day-2 node commands on real servers on loopback (issue 10).

  1. standby unregister and master unregister: each refusal (a primary as a standby,
     the current primary, a standby as a primary, an unknown node, a former primary
     that still accepts writes) exits 1 and changes nothing; a running standby
     unregisters itself, a stopped one is unregistered from another node with
     --node-id, an inactive former primary after a promotion with master unregister;
     cluster show no longer lists them and the events are recorded.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (clone_args, make_primary, output, parse_json, pgrm,  # noqa: E402
                     wait_until, write_conf)


# --------------------------------------------------------------------------------------
# Helpers


def three_nodes(sb: harness.Sandbox, **settings) -> tuple[dict, dict]:
    """node1 primary, node2 and node3 its standbys, each registered right after it is
    started (standby register waits for replay itself); returns ({id: Instance},
    {id: repmgr.conf})."""
    n1 = make_primary(sb, scale=None)
    nodes, confs = {1: n1}, {1: write_conf(sb, 1, n1, node_name='node1', **settings)}
    pgrm('-f', confs[1], 'master', 'register', check=0)
    for i in (2, 3):
        n = sb.new_instance(f'node{i}')
        nodes[i], confs[i] = n, write_conf(sb, i, n, node_name=f'node{i}', **settings)
        pgrm('-f', confs[i], *clone_args(n.datadir, n1), check=0)
        n.start()
        pgrm('-f', confs[i], 'standby', 'register', check=0)
    return nodes, confs


def shown(conf: Path) -> list:
    """The node ids cluster show lists, read with conf's node."""
    doc = parse_json(pgrm('-f', conf, '--json', 'cluster', 'show', check=0), 'cluster show --json')
    return [n['id'] for n in doc['data']['nodes']]


def metadata(inst: harness.Instance) -> str:
    """Every repl_nodes row and the number of events, as inst has them."""
    return (inst.psql('select * from repmgr_test.repl_nodes order by id', db='pgbench') + '\n' +
            inst.psql('select count(*) from repmgr_test.events', db='pgbench'))


def events(inst: harness.Instance, event: str) -> str:
    return inst.psql(f"select node_id, successful from repmgr_test.events where event = '{event}' "
                     'order by id', db='pgbench')


# --------------------------------------------------------------------------------------
# standby unregister, master unregister


def test_unregister_then_cluster_show():
    with harness.Sandbox() as sb:
        n, conf = three_nodes(sb)
        assert shown(conf[1]) == [1, 2, 3]

        # Refusals, each exit 1 with its reason, and nothing changed.
        before = metadata(n[1])
        for c, group, extra, reason in [
                (conf[1], 'standby', [], 'node 1 ("node1") is a primary, not a standby'),
                (conf[2], 'standby', ['--node-id', '1'], 'node 1 ("node1") is a primary, not a standby'),
                (conf[1], 'master', [], 'node 1 ("node1") is the current primary'),
                (conf[2], 'primary', ['--node-id', '1'], 'node 1 ("node1") is the current primary'),
                (conf[2], 'master', ['--node-id', '3'], 'node 3 ("node3") is a standby, not a primary'),
                (conf[2], 'standby', ['--node-id', '9'], 'node 9 is not registered')]:
            r = pgrm('-f', c, group, 'unregister', *extra, check=1)
            assert f'ERROR: {reason}\n' in r.stderr, output(r)
        r = pgrm('-f', conf[2], '--json', 'standby', 'unregister', '--node-id', '9', check=1)
        doc = parse_json(r, 'refused standby unregister --json')
        assert doc['ok'] is False and doc['error']['code'] == 1, doc
        assert doc['error']['message'] == 'node 9 is not registered', doc
        pgrm('-f', conf[2], 'standby', 'unregister', '--node-id', '0', check=1)
        assert metadata(n[1]) == before, 'a refused unregister changed the metadata'

        # A running standby unregisters itself (the default node).
        r = pgrm('-f', conf[3], '--json', 'standby', 'unregister', check=0)
        doc = parse_json(r, 'standby unregister --json')
        assert doc['ok'] is True, doc
        assert doc['data']['node']['id'] == 3 and doc['data']['primary_node_id'] == 1, doc
        assert shown(conf[1]) == [1, 2]
        assert events(n[1], 'standby_unregister') == '3|t'
        # Unregistered, it is refused as any unknown node.
        pgrm('-f', conf[1], 'standby', 'unregister', '--node-id', '3', check=1)

        # node1 is lost; node2 is promoted and node1 is an inactive former primary.
        n[1].stop()
        wait_until(lambda: not harness.streaming(n[2]), what='node2 to stop streaming')
        pgrm('-f', conf[2], 'standby', 'promote', check=0)
        assert n[2].psql('select id, active from repmgr_test.repl_nodes order by id',
                         db='pgbench') == '1|f\n2|t'

        # Back up on its own, node1 accepts writes: it is not unregistered.
        n[1].start()
        before = metadata(n[2])
        r = pgrm('-f', conf[2], 'master', 'unregister', '--node-id', '1', check=1)
        assert 'ERROR: node 1 ("node1") is running and accepts writes\n' in r.stderr, output(r)
        r = pgrm('-f', conf[2], 'master', 'unregister', check=1)
        assert 'ERROR: node 2 ("node2") is the current primary\n' in r.stderr, output(r)
        assert metadata(n[2]) == before, 'a refused master unregister changed the metadata'

        # Stopped for good, it is.
        n[1].stop()
        r = pgrm('-f', conf[2], 'master', 'unregister', '--node-id', '1', check=0)
        assert 'former primary node 1 ("node1") removed' in r.stdout, output(r)
        assert shown(conf[2]) == [2]
        assert events(n[2], 'primary_unregister') == '1|t'
        r = pgrm('-f', conf[2], '--json', 'cluster', 'event', '--event', 'primary_unregister', check=0)
        assert parse_json(r, 'cluster event --json')['data']['events'][0]['node_id'] == 1


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
