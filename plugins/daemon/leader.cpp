#include "plugins/daemon/leader.hpp"

#include <charconv>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/timeouts.hpp"

namespace pgrm::daemon {

Claim read_claim(const etcd::Created& created, int node, long long granted) {
    Claim c;
    if (created.created) {
        c.held = true;
        c.lease = granted;
        return c;
    }
    if (!created.holder) return c;  // gone between the compare and the read: try again
    const std::string& v = created.holder->value;
    int id = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), id);
    if (ec != std::errc() || end != v.data() + v.size() || id <= 0) {
        c.holder_value = v;
        return c;
    }
    if (id == node) {
        // Written without a lease (by hand), it cannot be renewed: not this node's claim.
        if (created.holder->lease == 0) {
            c.holder_value = v;
        } else {
            c.held = true;
            c.lease = created.holder->lease;
        }
        return c;
    }
    c.holder = id;
    c.holder_lease = created.holder->lease;
    return c;
}

LeaderKey::LeaderKey(const Config& cfg) : cfg_(cfg), client_(cfg), key_(cfg.etcd_prefix + "leader") {}

LeaderKey::Renewal LeaderKey::hold() {
    Renewal r;
    r.renewed = std::chrono::steady_clock::now();
    if (lease_ != 0) {
        auto left = client_.keepalive(lease_);
        if (left.count() > 0) {
            r.claim.held = true;
            r.claim.lease = lease_;
            r.ttl = std::min(ttl_, left);
            return r;
        }
        log::warning("etcd: the leader key's lease " + std::to_string(lease_) + " has ended");
        lease_ = 0;
    }
    // A lease of its own first: the key is created under it, or it is given back.
    r.renewed = std::chrono::steady_clock::now();
    const auto asked = timeouts::etcd_lease_ttl(cfg_);
    etcd::Lease granted = client_.grant(asked);
    Claim claim = read_claim(client_.create(key_, std::to_string(cfg_.node), granted.id), cfg_.node, granted.id);
    r.claim = claim;
    if (!claim.held || claim.lease != granted.id) {
        try {
            client_.revoke(granted.id);
        } catch (const Error& e) {
            log::debug(std::string("etcd: unused lease not revoked (it ends by itself): ") + e.what());
        }
    }
    if (claim.held && claim.lease != granted.id) {
        // Its own key from before (a restarted daemon): that lease, if it still lasts.
        r.renewed = std::chrono::steady_clock::now();
        auto left = client_.keepalive(claim.lease);
        if (left.count() <= 0) {
            r.claim = Claim{};
            return r;
        }
        lease_ = claim.lease;
        ttl_ = std::min(asked, left);
    } else if (claim.held) {
        lease_ = granted.id;
        ttl_ = std::min(asked, granted.ttl);
    }
    r.ttl = ttl_;
    return r;
}

StatePublisher::StatePublisher(const Config& cfg) : cfg_(cfg), thread_([this] { run(); }) {}

StatePublisher::~StatePublisher() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

void StatePublisher::offer(const etcd::NodeState& state) {
    {
        std::lock_guard lock(mutex_);
        next_ = state;
    }
    changed_.notify_all();
}

void StatePublisher::run() {
    etcd::Client client(cfg_);
    const std::chrono::seconds ttl = timeouts::daemon_alive(cfg_);
    long long lease = 0;
    std::string failed;  // the last failure, said once
    std::unique_lock lock(mutex_);
    while (true) {
        changed_.wait(lock, [this] { return stopping_ || next_; });
        if (stopping_) break;
        etcd::NodeState state = *next_;
        next_.reset();
        lock.unlock();
        try {
            if (lease != 0 && client.keepalive(lease).count() == 0) lease = 0;
            if (lease == 0) lease = client.grant(ttl).id;
            client.put(etcd::node_state_key(cfg_, state.node), etcd::to_json(state).dump(), lease);
            if (!failed.empty()) log::notice("etcd: this node's state is published again");
            failed.clear();
        } catch (const Error& e) {
            const std::string why = e.what() + (e.detail().empty() ? "" : ": " + e.detail());
            if (failed != why) log::warning("etcd: this node's state is not published: " + why);
            failed = why;
        }
        lock.lock();
    }
    lock.unlock();
    if (lease == 0) return;
    try {
        client.revoke(lease);  // its key with it: this daemon no longer runs
    } catch (const Error& e) {
        log::debug(std::string("etcd: this node's state is left to its lease: ") + e.what());
    }
}

bool LeaderKey::published(int node) { return client_.get(etcd::node_state_key(cfg_, node)).has_value(); }

void LeaderKey::revoke(long long holder_lease) { client_.revoke(holder_lease); }

void LeaderKey::release() {
    if (lease_ == 0) return;
    const long long lease = lease_;
    lease_ = 0;
    client_.revoke(lease);  // the key goes with it
}

}  // namespace pgrm::daemon
