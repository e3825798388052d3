#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/config.hpp"
#include "core/etcd.hpp"

// dcs = etcd (repmgrd(8), FENCE BEFORE PROMOTE, "With etcd"): the leader key,
// <etcd_prefix>leader, whose value is the id of the node that may take writes, under a
// lease of that node. The primary's daemon renews it every pass and fences its server when
// it could not for etcd_fence_after (FenceLease); a standby promotes only once it created
// the key, which etcd allows only while no lease holds it.
namespace pgrm::daemon {

// What a claim on the key found.
struct Claim {
    bool held = false;               // this node holds it, under lease
    std::optional<int> holder;       // not held: the node that does (none: nobody, or unreadable)
    std::string holder_value;        // the key's value when it names no node under a lease
    long long lease = 0;             // held: the lease to renew
    long long holder_lease = 0;      // holder: the lease it holds the key under
};
// Reads a txn that created the key, or found it: this node's own key (left by its previous
// daemon, or taken in a failover) is held again under the lease it has.
Claim read_claim(const etcd::Created& created, int node, long long granted);

class LeaderKey {
public:
    explicit LeaderKey(const Config& cfg);

    // Renews this node's lease, or takes the key when nobody holds it. renewed: the start
    // of the call etcd answered (the lease lasts at least ttl from then). Throws Error
    // when etcd cannot be reached.
    struct Renewal {
        Claim claim;
        std::chrono::steady_clock::time_point renewed{};
        std::chrono::seconds ttl{0};
    };
    Renewal hold();
    // Lets the key go (a primary no longer, a promotion that failed), when it holds it.
    void release();
    // etcd_failover_on_refusal: whether node's repmgrd has its state key in etcd (renewed
    // within daemon_alive), and ending another node's lease on the key. Throw Error when
    // etcd cannot be reached.
    bool published(int node);
    void revoke(long long holder_lease);
    bool holds() const { return lease_ != 0; }
    long long lease() const { return lease_; }
    std::chrono::seconds ttl() const { return ttl_; }

private:
    Config cfg_;
    etcd::Client client_;
    std::string key_;
    long long lease_ = 0;            // this node's lease holding the key; 0: none
    std::chrono::seconds ttl_{0};
};

// Publishes this node's state (etcd::NodeState) under <etcd_prefix>nodes/<id> from a
// thread of its own, so that an etcd that does not answer never holds up the loop: the
// loop offers its latest state each pass, the thread puts it under a lease of
// daemon_alive renewed at each put. The key goes with the daemon: its lease is revoked
// when it stops, and ends by itself when it dies.
class StatePublisher {
public:
    explicit StatePublisher(const Config& cfg);
    ~StatePublisher();
    StatePublisher(const StatePublisher&) = delete;
    StatePublisher& operator=(const StatePublisher&) = delete;

    void offer(const etcd::NodeState& state);  // replaces one not yet published

private:
    void run();

    const Config cfg_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::optional<etcd::NodeState> next_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the rest is set
};

}  // namespace pgrm::daemon
