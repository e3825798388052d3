#!/usr/bin/env python3
"""End to end: dcs = etcd, a real three-member etcd cluster (harness.EtcdCluster, on
loopback ports reserved like the servers') and three nodes with their repmgrd
(harness.setup_three: failover = automatic, harness.DAEMON_FAST timings, so the leader
key's lease is 11 s and its holder fences 5978 ms after its last renewal).

One cluster, etcd's clients on https only with a client certificate its authority signed
(--client-cert-auth; harness.Certificates, made with openssl in the sandbox) and its
authentication on (etcd_user, etcd_password), in order:
  1. the primary's repmgrd takes the leader key (<prefix>leader = 1) over TLS; cluster
     show, out of reach of node3's server (every connection slot taken), shows node3 as
     its repmgrd published it to etcd (<prefix>nodes/3), and says so; run on node3, every
     node as etcd has it;
  2. one etcd member down (SIGKILL) changes nothing: the primary stays writable and keeps
     the key, no standby promotes, for longer than the holder's fence time;
  3. etcd down (every member): the primary, unable to renew, fences itself (read-only) no
     sooner than its fence time; its postmaster is then killed (kill -9), the standbys
     elect a candidate, and it never promotes without the key;
  4. failover by lease: etcd back, node1's lease ends (its daemon cannot renew: its
     server is gone), and the candidate takes the key and promotes; the key names it and
     the other standby follows it;
  5. the password is in no daemon's log, in no cluster show --json, in no process title
     (and through 1 to 4 HTTP /primary answers from the leader key: 200 on its holder
     alone, through one member down; with etcd down 503 before the holder fences, though
     it reaches every node; 200 on the new holder after the failover);
  6. node1 rejoined (node rejoin);
  7. a switchover moves the key, and nobody is fenced for it;
  8. the standbys' daemons with a wrong etcd_cacert, with a client certificate file that
     does not load, and without a client certificate: each says why in one line; the primary's postmaster killed, its repmgrd gives the
     key up at once (nothing listens at its address), and no standby promotes without it;
  9. the right settings back: a standby takes the free key and promotes without waiting
     for a lease; the old primary, started again, is fenced, the key being another's;
 10. that one rejoined, the new primary's host is lost (repmgrd and postmaster killed,
     its lease kept alive by the test): with etcd_failover_on_refusal off no standby
     promotes; switched on (SIGHUP), the candidate revokes the lease and promotes.
(One cluster where there were three: 6 to 9 took two more clusters of their own.)

And a primary on another host (harness.setup_partitioned, etcd listening on the local end
of its link) cut off from etcd and both standbys: it fences itself before its lease ends,
so before a standby can take the key and promote, and never two nodes take writes.

Negative steps wait for the daemons to decide (a renewal after the member died, or the
standby's decision to wait), then hold a bounded window (harness.stays_false).
"""

from __future__ import annotations

import base64
import datetime
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (EtcdCluster, daemon_cluster, end_process_group, http_status, one_promoted, pgrm,  # noqa: E402
                     setup_three, stays_false, wait_until, writable)

KEY = '/pgrm/test/leader'
FENCE_AFTER = 5.978   # timeouts::etcd_fence_after with DAEMON_FAST
LEASE_TTL = 11        # timeouts::etcd_lease_ttl with DAEMON_FAST
SECRET = 'pgrm-etcd-Secret-7f3a'  # etcd_password: never in a log, a JSON document or a process title


def test_leader_key_failover_switchover_and_tls():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        certs = harness.Certificates(sb, ['127.0.0.1'])
        etcd = EtcdCluster(sb, tls=certs)
        etcd.enable_auth('pgrm', SECRET, '/pgrm/test/')
        settings = {'dcs': 'etcd', 'etcd_endpoints': etcd.endpoints, 'etcd_user': 'pgrm', 'etcd_password': SECRET,
                    'etcd_cacert': certs.ca, 'etcd_cert': certs.client, 'etcd_key': certs.client_key}
        ports = {i: harness.free_port() for i in (1, 2, 3)}
        setup_three(c, node_settings={i: {**settings, 'http_listen': f'127.0.0.1:{ports[i]}'} for i in (1, 2, 3)})
        n1, n2, n3 = c.nodes[1], c.nodes[2], c.nodes[3]

        def primary_status(i: int) -> int:
            return http_status(ports[i], '/primary')

        # 1. The primary holds the key; HTTP /primary answers from it.
        wait_until(lambda: etcd.get(KEY) == '1', timeout=30, what='node1 to take the leader key')
        wait_until(lambda: primary_status(1) == 200, timeout=30, what='/primary 200 on node1')
        assert primary_status(2) == 503 and primary_status(3) == 503

        # 1b. cluster show reads a node it cannot reach (every connection slot of node3
        # taken; its repmgrd keeps its own session) from what that node's repmgrd
        # publishes to etcd, and says so.
        wait_until(lambda: etcd.get('/pgrm/test/nodes/3'), timeout=30, what="node3's state in etcd")
        release = harness.hold_all_connections(sb, n3)
        doc = harness.parse_json(pgrm('-f', c.confs[1], '--json', 'cluster', 'show', check=0), 'cluster show')
        by_id = {n['id']: n for n in doc['data']['nodes']}
        assert by_id[3]['source'] == 'etcd' and by_id[3]['role_found'] == 'standby', by_id[3]
        assert 'too many clients' in by_id[3]['error'], by_id[3]
        assert by_id[1]['source'] == 'postgresql' and by_id[1]['role_found'] == 'primary', by_id[1]
        show = pgrm('-f', c.confs[1], 'cluster', 'show', check=0).stdout
        assert 'published to etcd' in show and '(from etcd: its repmgrd, standby, ' in show, show
        # From node3 itself, out of its own reach: every node as etcd has it.
        doc = harness.parse_json(pgrm('-f', c.confs[3], '--json', 'cluster', 'show', check=0), 'cluster show')
        by_id = {n['id']: n for n in doc['data']['nodes']}
        assert sorted(by_id) == [1, 2, 3] and {n['source'] for n in by_id.values()} == {'etcd'}, by_id
        assert by_id[1]['role_found'] == 'primary' and by_id[3]['name'] == 'node3', by_id
        assert 'the local node is out of reach' in pgrm('-f', c.confs[3], 'cluster', 'show', check=0).stdout
        release()

        # 2. One member down: the others still make a quorum, and the daemon tries the
        # next endpoint. The first member is the one every client tries first.
        etcd.kill('etcd1')
        stays_false(lambda: (not writable(n1) and 'node1 not writable') or one_promoted(c) or
                    (etcd.get(KEY) != '1' and f'leader key is {etcd.get(KEY)!r}') or
                    (primary_status(1) != 200 and '/primary not 200 on node1'),
                    seconds=FENCE_AFTER + 3, what='a change with one etcd member down')
        assert 'fencing this primary' not in c.daemons[1].log_text()
        etcd.start('etcd1')
        wait_until(etcd.healthy, timeout=60, what='etcd1 back in the cluster')

        # 3. etcd down (every member): the primary cannot renew and fences itself; killed
        # then, the standbys elect a candidate that waits for the key. Its /primary turns
        # 503 before the fence (etcd_fence_after less a health check after its last
        # renewal), though every standby still reaches it: a majority is not the lease.
        for name in etcd.names:
            etcd.kill(name)
        down = time.monotonic()
        wait_until(lambda: primary_status(1) == 503, timeout=LEASE_TTL + 30, interval=0.02,
                   what='/primary 503 on node1 without etcd')
        refused_at = time.time()
        wait_until(lambda: not writable(n1), timeout=LEASE_TTL + 30, what='node1 to fence itself without etcd')
        fenced = time.monotonic() - down
        assert fenced >= FENCE_AFTER - 2, f'fenced {fenced:.1f} s after etcd went down'
        c.daemons[1].wait_log('could not renew its leader key in etcd')
        line = next(x for x in c.daemons[1].log_text().splitlines() if 'could not renew its leader key in etcd' in x)
        fence_at = datetime.datetime.strptime(line[1:24], '%Y-%m-%d %H:%M:%S.%f').timestamp()
        assert refused_at < fence_at, f'/primary 503 {refused_at - fence_at:.3f} s after the fence began'
        print(f'# node1 /primary 503 {fence_at - refused_at:.3f} s before its fence', flush=True)
        print(f'# node1 fenced {fenced:.1f} s after etcd went down')
        n1.kill9()
        wait_until(lambda: any('etcd cannot be reached, and no standby promotes without the leader key'
                               in c.daemons[i].log_text() for i in (2, 3)),
                   timeout=60, what='a candidate waiting for the leader key')
        stays_false(lambda: one_promoted(c), seconds=5, what='a promotion without etcd')

        # 4. Failover by lease: etcd back, node1's lease (renewed by etcd's new leader)
        # ends, and the candidate takes the key and promotes; the other follows it.
        back = time.monotonic()
        for name in etcd.names:
            etcd.start(name)
        wait_until(etcd.healthy, timeout=60, what='etcd back')
        promoted = wait_until(lambda: one_promoted(c), timeout=LEASE_TTL + 60, what='a standby promoted')
        took = time.monotonic() - back
        other = c.nodes[5 - promoted]
        assert etcd.get(KEY) == str(promoted)
        assert 'holds the leader key in etcd' in c.daemons[promoted].log_text()
        wait_until(lambda: harness.streaming(other), timeout=60, what='the other standby following')
        print(f'# node{promoted} promoted {took:.1f} s after etcd came back')
        wait_until(lambda: primary_status(promoted) == 200, timeout=30, what=f'/primary 200 on node{promoted}')
        assert primary_status(5 - promoted) == 503

        # The password went to etcd alone.
        for i, d in c.daemons.items():
            assert SECRET not in d.log_text(), f'etcd_password in repmgrd {i}\'s log'
        assert SECRET not in pgrm('-f', c.confs[promoted], '--json', 'cluster', 'show', check=0).stdout
        for pid in os.listdir('/proc'):
            try:
                title = Path(f'/proc/{pid}/cmdline').read_bytes()
            except OSError:
                continue
            assert SECRET.encode() not in title, f'etcd_password in the process title of {pid}'

        # 6. node1 back as a standby of the new primary (the operator's node rejoin).
        p, o = promoted, 5 - promoted
        pgrm('-f', c.confs[1], 'node', 'rejoin', '-h', '127.0.0.1', '-p', c.nodes[p].port, check=0)
        wait_until(lambda: harness.streaming(n1), timeout=60, what='node1 streaming after its rejoin')

        # 7. A switchover moves the key: the old primary's repmgrd gives it up as it
        # demotes, the new one takes it at its first pass, and nobody is fenced for it.
        wait_until(lambda: pgrm('-f', c.confs[o], 'standby', 'switchover', '--dry-run', check=None).returncode == 0,
                   timeout=60, what="the switchover's checks to hold")
        since = {i: len(d.log_text()) for i, d in c.daemons.items()}
        pgrm('-f', c.confs[o], 'standby', 'switchover', check=0, timeout=300)
        wait_until(lambda: writable(c.nodes[o]) and etcd.get(KEY) == str(o), timeout=60,
                   what=f'node{o} the primary, holding the key')
        c.daemons[p].wait_log('etcd: the leader key is released', timeout=10)
        # Its lease is node{o}'s own: it renews it past the old one's fence time.
        stays_false(lambda: (not writable(c.nodes[o]) and f'node{o} not writable') or
                    (etcd.get(KEY) != str(o) and f'leader key is {etcd.get(KEY)!r}'),
                    seconds=FENCE_AFTER + 2, what=f'node{o} losing the key or fenced after the switchover')
        assert 'fencing this primary' not in c.daemons[o].log_text()[since[o]:]

        # 8. TLS refused: the standbys' daemons start again, one with an etcd_cacert that
        # did not sign etcd's certificate, one without a client certificate. Each says why
        # in one line; then the primary's postmaster is killed (kill -9): its repmgrd gives
        # the key up (nothing listens at its address), and no standby promotes without it.
        standbys = [i for i in (1, 2, 3) if i != o]
        # First a client certificate file that does not load: named as such (httplib
        # itself reports "Success" then).
        unloadable = {**settings, 'etcd_cert': sb.path('tls/missing.crt')}
        c.daemons[standbys[1]].stop()
        c.confs[standbys[1]] = harness.write_daemon_conf(sb, standbys[1], c.nodes[standbys[1]], **unloadable)
        c.start_daemon(standbys[1])
        c.daemons[standbys[1]].wait_log(r"etcd: this node's state is not published: etcd: no endpoint answered "
                                        r'/v3/\S+: https://127\.0\.0\.1:\d+: TLS: etcd_cert "[^"]*missing\.crt" and '
                                        r'etcd_key "[^"]*" could not be loaded as a certificate and its key', timeout=30)
        wrong = {standbys[0]: {**settings, 'etcd_cacert': certs.other_ca},
                 standbys[1]: {k: v for k, v in settings.items() if k not in ('etcd_cert', 'etcd_key')}}
        for i, bad in wrong.items():
            c.daemons[i].stop()
            c.confs[i] = harness.write_daemon_conf(sb, i, c.nodes[i], **bad)
            c.start_daemon(i)
        c.daemons[standbys[0]].wait_log(r"etcd: this node's state is not published: etcd: no endpoint answered "
                                        r'/v3/\S+: https://127\.0\.0\.1:\d+: its TLS certificate is not trusted '
                                        rf'\(.+\) by etcd_cacert "{certs.other_ca}"', timeout=30)
        c.daemons[standbys[1]].wait_log(r"etcd: this node's state is not published: etcd: no endpoint answered "
                                        r'/v3/\S+: https://127\.0\.0\.1:\d+: .*\(no etcd_cert: does it require a '
                                        r'client certificate\?\)', timeout=30)
        killed = time.monotonic()
        c.nodes[o].kill9()
        c.daemons[o].wait_log(r'the local server is gone \(nothing listens at its address\): giving the leader key up',
                              timeout=30)
        c.daemons[o].wait_log('etcd: the leader key is released', timeout=10)
        assert etcd.get(KEY) is None
        wait_until(lambda: any(re.search(r'etcd cannot be reached, and no standby promotes without the leader key '
                                         r'\(etcd: no endpoint answered /v3/\S+: https://', c.daemons[i].log_text())
                               for i in standbys),
                   timeout=60, what='a candidate waiting for the leader key it cannot reach')
        stays_false(lambda: one_promoted(c, standbys), seconds=5, what='a promotion without TLS to etcd')
        print(f'# no promotion {time.monotonic() - killed:.1f} s after the kill with etcd refused', flush=True)

        # 9. The right settings back: a standby takes the key, free since the kill, and
        # promotes without waiting for a lease to end. The old primary, started again, is
        # fenced as a former primary, and the key stays the new one's.
        for i in standbys:
            c.daemons[i].stop()
            c.confs[i] = harness.write_daemon_conf(sb, i, c.nodes[i], **settings)
            c.start_daemon(i)
        back = time.monotonic()
        new = wait_until(lambda: one_promoted(c, standbys), timeout=LEASE_TTL + 60, what='a standby promoted')
        print(f'# node{new} promoted {time.monotonic() - back:.1f} s after its daemon started with the right '
              'settings', flush=True)
        assert etcd.get(KEY) == str(new)
        assert 'fencing this primary' not in c.daemons[o].log_text()[since[o]:]
        c.nodes[o].start()
        wait_until(lambda: not writable(c.nodes[o]), timeout=30, what=f'node{o}, started again as a primary, fenced')
        c.daemons[o].wait_log('state local_server_down -> fenced: .*this node is a former primary and must be rejoined',
                              timeout=10)
        assert etcd.get(KEY) == str(new)

        # 10. node{o} rejoined, and node{new}'s host lost with etcd_failover_on_refusal
        # off, then on.
        c.nodes[o].stop()
        pgrm('-f', c.confs[o], 'node', 'rejoin', '-h', '127.0.0.1', '-p', c.nodes[new].port, check=0)
        for i in (1, 2, 3):
            if i != new:
                wait_until(lambda: harness.streaming(c.nodes[i]), timeout=60, what=f'node{i} streaming from node{new}')
        wait_until(lambda: '"daemon_state":"standby"' in (etcd.get(f'/pgrm/test/nodes/{o}') or ''),
                   timeout=30, what=f"node{o}'s repmgrd a standby again")
        host_loss_on_refusal(c, etcd, settings, lost=new)


class LeaseKept:
    """Renews an etcd lease every second from a thread, as its holder's daemon would: while
    it runs the lease cannot end by itself, so a standby can take the key it holds only
    by revoking it. Stops when etcd says the lease is gone."""

    def __init__(self, etcd: EtcdCluster, lease: str):
        self.etcd, self.lease = etcd, lease
        self.alive = True
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.alive and not self.stopping.wait(1):
            try:
                answer = self.etcd.request('etcd1', '/v3/lease/keepalive', {'ID': self.lease})
                self.alive = int(answer.get('result', {}).get('TTL', '0')) > 0
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        self.thread.join()


def host_loss_on_refusal(c, etcd: EtcdCluster, settings: dict, lost: int):
    """The primary's host lost (its repmgrd and postmaster killed), its lease on the key
    kept alive by the test (LeaseKept) so that only a revocation ends it. With
    etcd_failover_on_refusal off (the default), the candidate, its every check of node
    <lost> refused and that node's repmgrd silent in etcd (its state key gone), decides to
    wait for the lease, and nobody promotes; switched on (SIGHUP), the candidate revokes
    the lease at its next pass, takes the key and promotes, and the other standby follows."""
    standbys = [i for i in c.nodes if i != lost]
    kv = etcd.request('etcd1', '/v3/kv/range', {'key': base64.b64encode(KEY.encode()).decode()})['kvs'][0]
    assert base64.b64decode(kv['value']).decode() == str(lost)
    kept = LeaseKept(etcd, kv['lease'])
    try:
        end_process_group(c.daemons[lost].proc, term_timeout=None)
        c.nodes[lost].kill9()
        killed = time.monotonic()
        wait_until(lambda: etcd.get(f'/pgrm/test/nodes/{lost}') is None, timeout=60,
                   what=f"node{lost}'s repmgrd silent in etcd (its state key gone)")
        # A decision made after that: everything but the setting says revoke.
        seen = {i: len(c.daemons[i].log_text()) for i in standbys}
        waiting = f'failover: node {lost} holds the leader key in etcd: no promotion before its lease ends'
        candidate = wait_until(lambda: next((i for i in standbys if waiting in c.daemons[i].log_text()[seen[i]:]),
                                            None),
                               timeout=60, what='the candidate waiting for the lease')
        assert 'its lease is revoked' not in c.daemons[candidate].log_text()
        stays_false(lambda: one_promoted(c, standbys), seconds=2,
                    what='a promotion with etcd_failover_on_refusal off')
        assert kept.alive and etcd.get(KEY) == str(lost)

        on = time.monotonic()
        for i in standbys:
            harness.write_daemon_conf(c.sb, i, c.nodes[i], **settings, etcd_failover_on_refusal='on')
            os.kill(c.daemons[i].pid, signal.SIGHUP)
        promoted = wait_until(lambda: one_promoted(c, standbys), timeout=60, what='a standby promoted')
        print(f'# node{promoted} promoted {time.monotonic() - on:.1f} s after etcd_failover_on_refusal went on, '
              f'{time.monotonic() - killed:.1f} s after the host loss', flush=True)
        assert promoted == candidate
        c.daemons[promoted].wait_log(f'etcd: every check of node {lost} was refused and its repmgrd is silent in '
                                     r'etcd \(etcd_failover_on_refusal\): its lease is revoked', timeout=10)
        assert etcd.get(KEY) == str(promoted)
        other = next(i for i in standbys if i != promoted)
        wait_until(lambda: harness.streaming(c.nodes[other]), timeout=60, what='the other standby following')
        wait_until(lambda: not kept.alive, timeout=10, what=f"node{lost}'s lease gone")
    finally:
        kept.stop()



def test_partitioned_primary_fences_before_its_lease_ends():
    with harness.Sandbox() as sb, daemon_cluster(sb) as c:
        host = harness.NetNamespace(sb)
        etcd = EtcdCluster(sb, address=host.local)
        settings = {'dcs': 'etcd', 'etcd_endpoints': etcd.endpoints}
        harness.setup_partitioned(c, host=host, node_settings={i: settings for i in (1, 2, 3)})
        n1 = c.nodes[1]
        wait_until(lambda: etcd.get(KEY) == '1', timeout=30, what='node1 to take the leader key')
        assert writable(n1)

        with harness.TwoPrimaries(list(c.nodes.values())) as two:
            host.link(False)
            cut = time.monotonic()
            fenced = promoted = None
            # Both moments, sampled every 0.1 s (node1 through its Unix socket).
            deadline = cut + LEASE_TTL + 60
            while (fenced is None or promoted is None) and time.monotonic() < deadline:
                if fenced is None and not writable(n1):
                    fenced = time.monotonic()
                if promoted is None and one_promoted(c):
                    promoted = time.monotonic()
                time.sleep(0.1)
        assert fenced is not None and promoted is not None, (fenced, promoted)
        print(f'# link down -> node1 fenced in {fenced - cut:.1f} s, a standby promoted in {promoted - cut:.1f} s',
              flush=True)
        assert fenced < promoted, f'node1 fenced {fenced - promoted:.1f} s after the promotion'
        assert not two.violations, two.violations
        c.daemons[1].wait_log('could not renew its leader key in etcd', timeout=10)
        new_id = one_promoted(c)
        assert etcd.get(KEY) == str(new_id)



if __name__ == '__main__':
    sys.exit(harness.main(globals()))
