#!/usr/bin/env python3
"""End to end: a cluster of many registered nodes, most of them not answering.

  1. cluster show with 50 registered nodes (three real servers, one of them frozen by
     SIGSTOP; the rest registered rows whose conninfos point at ports nothing listens on,
     at listening sockets that never answer, and at addresses no host answers on a
     bridge whose only cable is out) answers within one connect timeout plus a constant,
     in text and in --json: every node is probed at once. The rows come in node id order
     and say what each node is; an unreachable active node gets its line saying so.
  2. service pause and unpause, which wait for every other node to replay the change, and
     standby follow without a host and standby promote without --force, which ask every
     registered node whether it accepts writes, answer within the same bound; node rejoin,
     which asks them which one is the primary, within it and the time its own work takes.
  3. the primary's repmgrd closes its kept connection to a node no longer active.
"""

import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import output, parse_json, pgrm  # noqa: E402

# Lightweight servers: many may run at once on a small machine.
LIGHT = {'shared_buffers': '16MB', 'max_connections': 30}

# The conninfos below carry no connect_timeout, so cluster show gives each node
# timeouts::kProbeConnect (3 s) to connect. Probed one after another, the 26 silent
# nodes alone would take 78 s; at once, one such timeout. The slack is generous (a
# loaded 2-core machine starts 50 threads and their connections): a bound, not a timing.
PROBE_CONNECT_S = 3
SLACK_S = 12


def silent_listener(sb: harness.Sandbox) -> int:
    """A loopback port whose socket listens but is never accepted from: a client's TCP
    connection is made, its startup packet never answered, as from a frozen server."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    s.listen(64)
    sb.on_cleanup(s.close)
    return s.getsockname()[1]


def test_fifty_nodes():
    with harness.Sandbox() as sb:
        c = harness.small_cluster(sb, standbys=2, extra_conf=LIGHT)
        bridge = harness.Bridge(sb, 1)
        bridge.link(0, False)   # its address answers nobody, nor ARP: no route to it
        net = bridge.local.rsplit('.', 1)[0]

        # id -> (name, conninfo, active, what cluster show must find)
        rows = {}
        for i in range(4, 14):                        # nothing listens: refused at once
            rows[i] = (f'dead{i}', f'host=127.0.0.1 port={harness.free_port()} user=postgres dbname=pgbench',
                       i % 5 != 0, 'refused')
        silent = [silent_listener(sb) for _ in range(15)]
        for i in range(14, 44):                       # listens, never answers: two nodes a port
            rows[i] = (f'silent{i}', f'host=127.0.0.1 port={silent[(i - 14) // 2]} user=postgres dbname=pgbench',
                       True, 'unreachable')
        for i in range(44, 51):                       # no host on the bridge answers
            host = bridge.addresses[0] if i == 44 else f'{net}.{200 + i}'
            rows[i] = (f'unroutable{i}', f'host={host} port=5432 user=postgres dbname=pgbench', True, None)
        values = ', '.join(f"({i}, 'test', '{name}', '{ci}', 'standby', 1, {str(active).lower()})"
                           for i, (name, ci, active, _) in rows.items())
        c.nodes[1].psql('insert into repmgr_test.repl_nodes (id, cluster, name, conninfo, type, '
                        f'upstream_node_id, active) values {values}', db='pgbench')

        frozen = harness.freeze(c.nodes[3].pid())
        try:
            check_cluster_show(c, rows)
            check_pause(c)
            check_daemon_links(sb, c)
            check_follow_and_promote(c)
        finally:
            harness.thaw(frozen)


def timed(*args) -> tuple:
    started = time.monotonic()
    r = pgrm(*args, check=0)
    return r, time.monotonic() - started


def check_cluster_show(c: harness.Cluster, rows: dict):
    text, text_s = timed('-f', c.confs[1], 'cluster', 'show')
    js, json_s = timed('-f', c.confs[1], '--json', 'cluster', 'show')
    print(f'# cluster show, 50 nodes: {text_s:.1f} s (text), {json_s:.1f} s (--json)')
    bound = PROBE_CONNECT_S + SLACK_S
    assert text_s < bound and json_s < bound, (text_s, json_s, output(text))

    # --json: every node, in id order, each as it is.
    nodes = parse_json(js, 'cluster show --json')['data']['nodes']
    assert [n['id'] for n in nodes] == list(range(1, 51)), [n['id'] for n in nodes]
    by_id = {n['id']: n for n in nodes}
    assert (by_id[1]['role_found'], by_id[1]['status']) == ('primary', 'running'), by_id[1]
    assert (by_id[2]['role_found'], by_id[2]['status'], by_id[2]['streaming']) == \
        ('standby', 'running', True), by_id[2]
    assert (by_id[3]['role_found'], by_id[3]['status'], by_id[3]['connection_failure']) == \
        ('unreachable', 'unreachable', 'unreachable'), by_id[3]
    for i, (name, _, active, failure) in rows.items():
        n = by_id[i]
        assert n['name'] == name and n['role_found'] == 'unreachable', n
        assert n['status'] == ('unreachable' if active else 'inactive'), n
        assert n['error'], n
        if failure:
            assert n['connection_failure'] == failure, n

    # Text: the same rows in the same order, and a line for each unreachable active node.
    lines = text.stdout.splitlines()
    table_ids = [int(line.split('|')[0]) for line in lines if line.split('|')[0].strip().isdigit()]
    assert table_ids == list(range(1, 51)), output(text)
    for i in [3] + [i for i, row in rows.items() if row[2]]:
        name = by_id[i]['name']
        assert any(line.startswith(f'node {i} ("{name}") is unreachable: ') for line in lines), \
            (i, output(text))
    for i in [i for i, row in rows.items() if not row[2]]:
        assert not any(line.startswith(f'node {i} (') for line in lines), (i, output(text))


def check_pause(c: harness.Cluster):
    """service pause and unpause wait for every other active node to replay the change:
    all at once, so the silent ones cost one connect timeout together."""
    for verb in ('pause', 'unpause'):
        r, verb_s = timed('-f', c.confs[1], '--json', 'service', verb)
        print(f'# service {verb}, 50 nodes: {verb_s:.1f} s')
        assert verb_s < PROBE_CONNECT_S + SLACK_S, (verb_s, output(r)[-2000:])
        nodes = {n['id']: n for n in parse_json(r, f'service {verb} --json')['data']['nodes']}
        assert nodes[2]['has_it'] and not nodes[3]['has_it'], output(r)
        assert sorted(nodes) == [i for i in range(1, 51) if i < 4 or i % 5 != 0 or i >= 14], sorted(nodes)


def check_daemon_links(sb: harness.Sandbox, c: harness.Cluster):
    """The primary's repmgrd keeps a connection to every other active node between passes;
    a node made inactive (or unregistered) loses it. failover = manual: this primary sees
    no majority of the fifty, and must not fence."""
    conf = harness.write_daemon_conf(sb, 1, c.nodes[1], name='repmgrd1', failover='manual')
    d = harness.Daemon(sb, 'node1', conf)
    link = ("select count(*) from pg_stat_activity where backend_type = 'client backend' "
            "and application_name = 'pgrm'")
    try:
        harness.wait_until(lambda: c.nodes[2].psql(link) == '1', timeout=60,
                           what="node1's repmgrd to keep a connection to node2")
        c.nodes[1].psql('update repmgr_test.repl_nodes set active = false where id = 2', db='pgbench')
        harness.wait_until(lambda: c.nodes[2].psql(link) == '0', timeout=60,
                           what="node1's repmgrd to close its connection to node2, now inactive")
        c.nodes[1].psql('update repmgr_test.repl_nodes set active = true where id = 2', db='pgbench')
    finally:
        d.stop()


def check_follow_and_promote(c: harness.Cluster):
    """standby follow without a host asks every registered node which one accepts writes,
    standby promote without --force whether any other does: at once, so the silent ones
    cost one connect timeout together. node2 follows node1 (which it already does), then,
    node1 stopped, is promoted."""
    r, follow_s = timed('-f', c.confs[2], 'standby', 'follow')
    print(f'# standby follow, 50 nodes: {follow_s:.1f} s')
    assert r.returncode == 0, output(r)
    assert follow_s < PROBE_CONNECT_S + SLACK_S, (follow_s, output(r))

    c.nodes[1].stop()
    harness.wait_until(lambda: not harness.streaming(c.nodes[2]), what='node2 to stop streaming')
    r, promote_s = timed('-f', c.confs[2], 'standby', 'promote')
    print(f'# standby promote, 50 nodes: {promote_s:.1f} s')
    assert r.returncode == 0, output(r)
    assert promote_s < PROBE_CONNECT_S + SLACK_S, (promote_s, output(r))
    assert c.nodes[2].psql('select pg_is_in_recovery()') == 'f'

    # node rejoin asks every registered node which one is the primary: node1 rejoins node2.
    # Its own work (starting the server, streaming, replaying) takes a few seconds more.
    r, rejoin_s = timed('-f', c.confs[1], 'node', 'rejoin', '-h', '127.0.0.1', '-p', c.nodes[2].port)
    print(f'# node rejoin, 50 nodes: {rejoin_s:.1f} s')
    assert r.returncode == 0, output(r)[-3000:]
    assert rejoin_s < PROBE_CONNECT_S + 2 * SLACK_S, (rejoin_s, output(r)[-3000:])
    harness.wait_streaming_from(c.nodes[1], c.nodes[2])


if __name__ == '__main__':
    sys.exit(harness.main(globals()))
