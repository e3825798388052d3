#include "plugins/daemon/monitor.hpp"

#include <future>
#include <memory>
#include <set>
#include <thread>
#include <tuple>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/exec.hpp"
#include "core/health.hpp"
#include "core/log.hpp"
#include "core/node_identity.hpp"
#include "core/server.hpp"
#include "core/timeline.hpp"
#include "core/timeouts.hpp"
#include "plugins/daemon/election.hpp"

namespace pgrm::daemon {

namespace {

using namespace std::chrono_literals;

constexpr auto kQueryTimeout = timeouts::kDaemonLocalQuery;
// State changes kept while no primary takes them; the oldest go first.
constexpr size_t kMaxPendingEvents = 64;

// A step that may take longer than the liveness bound allows a pass: the loop says how
// long it may be busy, so that /liveness does not call it stuck (and a liveness probe
// does not kill it in the middle of a failover).
class Busy {
public:
    Busy(StateBoard& board, std::chrono::milliseconds most)
        : board_(board), before_(board.set_busy_until(std::chrono::steady_clock::now() + most)) {}
    ~Busy() { board_.set_busy_until(before_); }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

private:
    StateBoard& board_;
    std::chrono::steady_clock::time_point before_;
};

log::Level level_of(State to) {
    switch (to) {
    case State::LocalServerDown:
    case State::Unregistered:
    case State::PrimaryLostConfirming:
    case State::Paused: return log::Level::Warning;
    case State::PrimaryLost:
    case State::Electing:
    case State::Fenced: return log::Level::Error;
    default: return log::Level::Notice;
    }
}

// The settings the leader key's lease is taken under, as one list: compared and kept
// on reload.
auto dcs_settings(Config& c) {
    return std::tie(c.dcs, c.etcd_endpoints, c.etcd_prefix, c.etcd_lease_ttl, c.etcd_cacert, c.etcd_cert,
                    c.etcd_key, c.etcd_user, c.etcd_password);
}

}  // namespace

Monitor::Monitor(Config config, std::string self_exe, Signals& signals, bool verbose)
    : cfg_(std::move(config)), self_exe_(std::move(self_exe)), signals_(signals), verbose_(verbose) {
    if (cfg_.dcs == "etcd") {
        leader_ = std::make_unique<LeaderKey>(cfg_);
        publisher_ = std::make_unique<StatePublisher>(cfg_);
    }
}

// Connections to other nodes give up after one reconnect interval (libpq's own
// connect_timeout cannot go below 2 s).
ConnectOptions Monitor::quick_connect() const {
    ConnectOptions o;
    o.connect_timeout = timeouts::kDaemonLocalConnect;
    o.deadline = timeouts::remote_connect(cfg_);
    return o;
}

std::chrono::milliseconds Monitor::remote_timeout() const { return timeouts::remote_query(cfg_); }

ExitCode Monitor::run() {
    std::string started = "repmgrd started for node " + std::to_string(cfg_.node) + " of cluster \"" + cfg_.cluster +
                          "\" (failover " + cfg_.failover + ")";
    log::notice(started);
    log_timing();
    board_.set_bounds(timeouts::liveness(cfg_), timeouts::fence_after(cfg_) - timeouts::health_check(cfg_));
    auto now = std::chrono::system_clock::now();
    board_.enter(State::Starting, "repmgrd started", now);
    queue_event({cfg_.node, "repmgrd_" + std::string(state_name(State::Starting)), true, started, std::nullopt, now});
    while (state_ != State::Stopped) {
        if (signals_.reload) reload_config();
        Observation seen = observe();
        Transition t = next_state(state_, seen);
        arrived_at_once_ = t.at_once;
        if (t.to != state_) enter(t, seen);
        if (!t.held.empty()) log::warning(t.held);
        notifier_.pass_done(board_.snapshot());
        if (state_ != State::Stopped && !t.at_once) wait(std::chrono::seconds(cfg_.monitor_interval_secs), true);
    }
    notifier_.stopping();
    // What happened last, where a primary still takes it: this server, else the primary.
    // primary_ may be a standby by now (this node itself, right after a switchover made
    // it one, until the replayed metadata named the new primary): asked afresh then.
    try {
        if (local_ && local_->ok() && !query_in_recovery(*local_, kQueryTimeout)) {
            flush_events(*local_, kQueryTimeout);
        } else if (!events_.empty() && local_ && local_->ok()) {
            if (primary_ && primary_->ok() && query_in_recovery(*primary_, remote_timeout())) primary_.reset();
            if (!primary_ || !primary_->ok()) {
                Observation seen;
                check_primary(seen, remote_timeout());
                if (!seen.primary_answers) primary_.reset();
            }
            if (primary_) flush_events(*primary_, remote_timeout());
        }
    } catch (const Error& e) {
        log::debug(std::string("state changes not recorded: ") + e.what());
    }
    log::notice("repmgrd stopping");
    return promoted_outside_ ? ExitCode::Promoted : ExitCode::Success;
}

void Monitor::reload_config() {
    signals_.reload = false;
    try {
        Config fresh = load_config(cfg_.path);
        if (fresh.node != cfg_.node || fresh.cluster != cfg_.cluster)
            throw Error(ExitCode::BadConfig, "node and cluster cannot change while running");
        if (fresh.http_listen != cfg_.http_listen)
            log::warning("http_listen changed to \"" + fresh.http_listen +
                         "\": the HTTP endpoint keeps its listener until repmgrd restarts");
        fresh.http_listen = cfg_.http_listen;  // the one in use
        // The lease a primary holds, and what it was taken under, cannot change midway.
        if (dcs_settings(fresh) != dcs_settings(cfg_))
            log::warning("dcs or etcd settings changed: the ones in use stay until repmgrd restarts");
        dcs_settings(fresh) = dcs_settings(cfg_);
        log::set_file(fresh.log_file);  // also reopens it, for logrotate
        log::Level level = *log::parse_level(fresh.log_level);
        log::set_level(verbose_ ? std::min(level, log::Level::Info) : level);
        cfg_ = fresh;
        board_.set_bounds(timeouts::liveness(cfg_), timeouts::fence_after(cfg_) - timeouts::health_check(cfg_));
        log::notice("configuration reloaded from \"" + cfg_.path + "\"");
        log_timing();
    } catch (const Error& e) {
        log::error(std::string("configuration not reloaded: ") + e.what());
    }
}

void Monitor::log_timing() const {
    if (cfg_.failover != "automatic") return;
    if (leader_) {
        log::notice("fence before promote (dcs = etcd): the primary holds the leader key \"" + cfg_.etcd_prefix +
                    "leader\" under a lease of " + timeouts::format(timeouts::etcd_lease_ttl(cfg_)) +
                    " (etcd_lease_ttl) and fences itself " + timeouts::format(timeouts::etcd_fence_after(cfg_)) +
                    " after the start of its last renewal (etcd_fence_after); a standby promotes only once it "
                    "created the key");
        return;
    }
    log::notice("fence before promote: a primary cut off from a majority fences itself " +
              timeouts::format(timeouts::fence_after(cfg_)) + " after the start of its last probe round that reached one "
              "(fence_after), in at most " + timeouts::format(timeouts::fence_action()) +
              " (fence_action); a standby that lost its primary by timeout promotes no sooner than " +
              timeouts::format(timeouts::promote_after(cfg_)) + " after the start of its first failed check (promote_after)");
}

// A SIGHUP does not cut it short: the reload waits for the next pass, or the
// reconnect attempts would run back to back and declare a primary lost too soon.
void Monitor::wait(std::chrono::milliseconds duration, bool between_passes) {
    auto until = std::chrono::steady_clock::now() + duration;
    while (!signals_.stop && !(between_passes && woken_.exchange(false))) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return;
        auto slice = std::min(left, std::chrono::milliseconds(100));
        if (primary_ && primary_->ok()) {
            if (primary_->hung_up(slice)) return;
        } else if (listening_ && local_ && local_->ok()) {
            if (local_->notified(slice)) return;  // a switchover request: act on it now
        } else {
            std::this_thread::sleep_for(slice);
        }
    }
}

// --------------------------------------------------------------------------------------
// One pass, and the transitions

Observation Monitor::observe() {
    Observation o;
    o.stop_requested = signals_.stop;
    o.automatic = cfg_.failover == "automatic";
    o.node_id = cfg_.node;
    if (o.stop_requested) return o;
    try {
        probe_local(o);
        o.unregistered = check_registration(o.in_recovery);
        if (o.unregistered.empty()) {
            o.switchover = planned_switchover();
            read_pause(o);
            paused_ = o.paused;
            pause_overridden_ = o.pause_overridden;
            // The pause holds the lease from the pass that reads it, whatever ends that pass
            // before its probe round (its server stopped for the maintenance it was paused
            // for, a query that times out); one that ran out already, that round counts.
            if (o.paused && !lease_.ran()) lease_.cancel();
        }
        if (o.unregistered.empty() && o.in_recovery) {
            switch (state_) {
            case State::SwitchoverWait: await_switchover(o); break;
            case State::PrimaryLostConfirming: confirm_primary_lost(o); break;
            case State::PrimaryLost:
            case State::Paused: check_primary(o, timeouts::health_check(cfg_)); break;
            case State::Electing:
                // Straight after the reconnect attempts the primary was just found lost.
                if (!arrived_at_once_) check_primary(o, timeouts::health_check(cfg_));
                if (o.primary_answers && o.primary_read_only) find_successor(o);
                if ((!o.primary_answers || o.primary_read_only) && !o.paused && o.needs_rejoin.empty()) {
                    o.election = hold_election(o.primary_read_only);
                    // A promotion held for the fence less than a pass longer: this pass
                    // waits for it, looks once more, and elects again.
                    auto hold = promotion_hold(primary_failing(), timeouts::promote_after(cfg_));
                    if (!leader_ && o.election->action == Decision::Action::Wait && hold.count() > 0 &&
                        hold <= std::chrono::seconds(cfg_.monitor_interval_secs)) {
                        wait(hold);
                        check_primary(o, timeouts::health_check(cfg_));
                        if (!o.primary_answers && o.primary_refused.empty() && !signals_.stop)
                            o.election = hold_election(false);
                    }
                }
                break;
            case State::Promoting: o.promote = promote(); break;
            case State::FollowingNewPrimary:
                o.follow = follow_candidate();
                if (!o.follow->ok && candidate_) judge_follow(o, *candidate_);
                break;
            default:
                check_primary(o, timeouts::health_check(cfg_));
                // A fenced primary takes no monitoring row (it is read-only).
                if (o.primary_answers && o.primary_read_only) find_successor(o);
                else if (o.primary_answers) record_monitoring(o);
            }
        } else if (o.unregistered.empty() && state_ == State::Demoting && o.switchover) {
            Busy busy(board_, timeouts::kSwitchover);
            o.demotion = demote_for_switchover(cfg_, local_, *o.switchover,
                                               DemotionLimits{quick_connect(), remote_timeout()});
            probe_local(o);  // how the server runs now
        } else if (o.unregistered.empty() && state_ == State::Fenced) {
            // A fence that failed (its session closed under it, say) left the server
            // taking writes: state fenced is not done until the fence holds.
            bool writable = !o.in_recovery && o.local && !o.local->read_only;
            if (!fence_again_.empty() && writable && fence(fence_again_).empty()) {
                log::notice("the fence holds now");
                fence_again_.clear();
            }
        } else if (o.unregistered.empty()) {
            listen_for_switchover();
            probe_nodes(o);
            if (leader_) hold_leader_key(o);
            if (!o.newer_primary && !o.newer_standby) record_heartbeat();
            if (lift_pause_ && state_ == State::Primary) lift_pause();
        }
        // dcs = etcd: what this pass saw, for cluster show when this server is out of reach.
        if (publisher_ && o.local) {
            const long long now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch()).count();
            publisher_->offer(etcd::node_state(cfg_, std::string(state_name(state_)), *o.local, now_s));
        }
        // The metadata can take an unpause again: a request to go on despite the pause
        // has done its part.
        if (o.primary_answers) resume_generation_ = -1;
        o.primary_id = primary_id_;
        // Only a whole pass proves the local server is back.
        local_error_.clear();
    } catch (const Error& e) {
        // Once per distinct failure, not every pass: a server down for an hour
        // should not bury the log.
        o.local_up = false;
        o.local_error = std::string(e.what()) + (e.detail().empty() ? "" : ": " + e.detail());
        if (state_ == State::LocalServerDown && o.local_error != local_error_)
            log::warning("local server: " + o.local_error);
        else if (state_ == State::LocalServerDown)
            log::debug("local server: " + o.local_error);
        local_error_ = o.local_error;
        local_.reset();
        auto* refused = dynamic_cast<const ConnectionError*>(&e);
        o.local_gone = refused && refused->failure() == ConnectFailure::Refused;
        // dcs = etcd: a primary whose server is gone (not slow, not cut off: its host
        // answers that nothing listens) gives the leader key up at once, as without etcd
        // its standbys fail over at once when they find it refused; else they would wait
        // for the lease to end. A server back takes the key again if nobody took it, and
        // is fenced if a standby did (hold_leader_key).
        if (leader_ && o.local_gone && o.automatic && !paused_ && leader_->holds()) {
            log::notice("the local server is gone (nothing listens at its address): giving the leader key up");
            release_leader_key();
            lease_.cancel();  // nothing to fence; back, it renews or is fenced
        }
    }
    board_.pass_done(o, o.in_recovery ? primary_id_ : std::nullopt, std::chrono::system_clock::now());
    return o;
}

void Monitor::enter(const Transition& t, const Observation& seen) {
    State from = state_;
    state_ = t.to;
    if (!watches_primary(t.to)) failing_since_.reset();
    auto now = std::chrono::system_clock::now();
    board_.enter(t.to, t.reason, now);
    bool promoted_outside = t.to == State::Stopped && !seen.stop_requested;
    log::write(promoted_outside ? log::Level::Error : level_of(t.to), "state " + std::string(state_name(from)) + " -> " + std::string(state_name(t.to)) +
                                   ": " + t.reason);
    std::optional<int> related =
        related_node(from, t.to, seen, candidate_ ? std::optional<int>(candidate_->id) : std::nullopt);
    queue_event({cfg_.node, "repmgrd_" + std::string(state_name(t.to)), true, t.reason, related, now});
    // Back from a fence: a standby again (rejoined), or the primary once more.
    if (fenced_ && (t.to == State::Standby || t.to == State::Primary)) {
        fenced_ = false;
        fence_again_.clear();
        queue_event({cfg_.node, "primary_unfenced", true,
                     std::string(t.to == State::Standby ? "this former primary is a standby again"
                                                        : "this node accepts writes as the primary again") +
                         ": " + t.reason,
                     related, now});
    }

    // Only a primary holds a lease; one that is not, or no longer, counts anew once it is.
    if (t.to != State::Primary && t.to != State::LocalServerDown && t.to != State::Fenced) {
        lease_.cancel();
        last_majority_ = {};
        // The leader key goes with it; a standby promoting keeps the one it took.
        if (t.to != State::Promoting) {
            release_leader_key();
            key_renewed_ = key_answered_ = {};
        }
    }

    // What entering a state does once.
    bool was_primary = from == State::Primary || from == State::Fenced;
    switch (t.to) {
    case State::Primary:
        primary_.reset();
        // Promoted by a failover that "service unpause" let go on while the metadata still
        // said paused: this node's metadata is the cluster's now, and takes the unpause.
        lift_pause_.reset();
        if (from == State::Promoting && seen.pause_overridden) lift_pause_ = resume_generation_.load();
        break;
    case State::Fenced: {
        fenced_ = true;
        // The lease may have fenced already: only a fence that failed is tried again.
        auto ran = lease_.ran();
        lease_.cancel();
        last_majority_ = {};
        key_renewed_ = key_answered_ = {};
        std::string failed;
        if (ran && ran->failed.empty())
            log::error("fencing this primary: " + t.reason + " (its lease has fenced it already)");
        else
            failed = fence(t.reason);
        fence_again_ = failed.empty() ? "" : t.reason;
        NodeEvent fenced{cfg_.node, "primary_fenced", failed.empty(),
                         (failed.empty() ? std::string(fence_stops() ? "fenced (server stopped): " : "fenced (read-only): ")
                                         : "fence failed (" + failed + "): ") +
                             t.reason,
                         related, now};
        // The new primary learns it, and takes this node's pending state changes; without
        // one, it waits with them (this node takes no writes now).
        auto link = seen.newer_primary ? node_links_.find(*seen.newer_primary) : node_links_.end();
        if (link == node_links_.end() || !link->second.conn) {
            queue_event(fenced);
            break;
        }
        try {
            Metadata meta(*link->second.conn, cfg_.cluster, remote_timeout());
            meta.commit_locally();  // as check_primary says
            try {
                record_event(cfg_, &meta, fenced);
            } catch (const Error&) {
                keep_event(fenced);
                throw;
            }
            flush_events(*link->second.conn, remote_timeout());
        } catch (const std::exception& e) {
            log::warning("could not record the fence on node " + std::to_string(*seen.newer_primary) + ": " +
                         e.what());
        }
        break;
    }
    case State::Electing:
        last_decision_.reset();
        break;
    case State::Stopped:
        promoted_outside_ = promoted_outside;
        break;
    default:
        if (was_primary && seen.in_recovery) {
            node_links_.clear();
            schema_current_ = false;  // promoted again later, it checks again
        }
    }
}

void Monitor::queue_event(const NodeEvent& e) {
    record_event(cfg_, nullptr, e);
    keep_event(e);
}

void Monitor::keep_event(const NodeEvent& e) {
    if (events_.size() == kMaxPendingEvents) {
        log::debug("event not recorded (too many waiting for a primary): " + events_.front().event);
        events_.pop_front();
    }
    events_.push_back(e);
}

void Monitor::flush_events(Connection& primary, std::chrono::milliseconds timeout) {
    Metadata meta(primary, cfg_.cluster, timeout);
    while (!events_.empty()) {
        meta.record_event(events_.front());
        events_.pop_front();
    }
}

// --------------------------------------------------------------------------------------
// Steps of every state

void Monitor::probe_local(Observation& o) {
    if (!local_ || !local_->ok()) {
        listening_ = false;
        local_.emplace(Connection::open(cfg_.conninfo, ConnectOptions{.connect_timeout = timeouts::kDaemonLocalConnect}));
    }
    // Everything the HTTP endpoint and its metrics tell about this server, in the one
    // round trip that says whether it is in recovery.
    o.local = sample_node(*local_, kQueryTimeout);
    o.in_recovery = o.local->in_recovery;
    o.local_up = true;
}

// Empty when this node is in the metadata; else why not. The seed's daemon registers its
// standby when it is missing.
std::string Monitor::check_registration(bool in_recovery) {
    if (registered_) return "";
    Metadata meta(*local_, cfg_.cluster, kQueryTimeout);
    if (!meta.installed())
        return "no metadata for cluster \"" + cfg_.cluster + "\" yet: register the primary first";
    if (meta.node(cfg_.node)) {
        registered_ = true;
        return "";
    }
    if (!in_recovery)
        return "node " + std::to_string(cfg_.node) + " is not registered: run \"repmgr master register\"";
    ChildOutcome registered = run_self({"standby", "register"}, "");
    registered_ = registered.ok;
    return registered.ok ? "" : "standby register failed: " + registered.message;
}

// --------------------------------------------------------------------------------------
// Steps of a standby

// A check that fails, and did not even reach the primary's server, starts or extends the
// run of failures that fence before promote measures from (its start: a check that
// started before a cut may fail for it); any answer ends the run. A failure is refused
// when the primary's host answered: nothing listened, or its server failed the query or
// closed the connection; a timeout, or an unreachable host, is not.
void Monitor::check_primary(Observation& o, std::chrono::milliseconds timeout) {
    auto started = std::chrono::steady_clock::now();
    bool asked = false;  // this node's own metadata named the primary: a failure is its
    auto failed = [&](bool refused) {
        if (!asked) return;
        refused_only_ = (failing_since_ ? refused_only_ : true) && refused;
        if (!failing_since_) failing_since_ = started;
    };
    try {
        Metadata local_meta(*local_, cfg_.cluster, kQueryTimeout);
        auto primary = local_meta.active_primary();
        if (!primary) return;
        asked = true;
        if (!primary_ || !primary_->ok() || primary_id_ != primary->id) {
            primary_.reset();
            primary_id_ = primary->id;
            primary_.emplace(Connection::open(primary->conninfo, quick_connect()));
            // What this daemon writes there (monitoring rows, its state changes) commits
            // without waiting for the primary's synchronous standbys: a new primary's may
            // not follow it yet, and a write given up on would leave its backend waiting.
            Metadata(*primary_, cfg_.cluster, timeout).commit_locally();
        }
        UpstreamState there = query_upstream_state(*primary_, timeout);
        o.primary_answers = !there.in_recovery;
        o.primary_read_only = o.primary_answers && there.read_only;
        refusal_.clear();
        failing_since_.reset();
    } catch (const ConnectionError& e) {
        log::info(std::string("primary check failed: ") + e.what());
        primary_.reset();
        if (!e.server_alive()) return failed(e.failure() == ConnectFailure::Refused);
        failing_since_.reset();
        // Its server answered: it lives, whatever kept us out (a password, no free slot,
        // starting up). Said once per reason; it is no reason to fail over.
        o.primary_refused = std::string(describe(e.failure()));
        if (refusal_ != e.what())
            log::warning("primary node " + std::to_string(*primary_id_) + " refused the connection (" +
                         o.primary_refused + "), so it lives: " + e.what() +
                         (e.detail().empty() ? "" : ": " + e.detail()));
        refusal_ = e.what();
    } catch (const QueryTimedOut& e) {
        log::info(std::string("primary check failed: ") + e.what());
        primary_.reset();
        failed(false);
    } catch (const Error& e) {
        // The server failed the query or closed the connection (a postmaster killed
        // ends its backends): its host answered.
        log::info(std::string("primary check failed: ") + e.what());
        primary_.reset();
        failed(true);
    }
}

std::optional<PrimaryFailing> Monitor::primary_failing() const {
    if (!failing_since_) return std::nullopt;
    return PrimaryFailing{std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                                *failing_since_),
                          refused_only_};
}

// Reconnect attempts before declaring the primary lost: the first at once, the next ones
// reconnect_interval after the previous one started, so an attempt that timed out on a
// frozen primary has already spent its interval. Each gets the full interval: the
// pass's check only raised suspicion.
void Monitor::confirm_primary_lost(Observation& o) {
    o.reconnect_attempts = cfg_.reconnect_attempts;
    auto next_attempt = std::chrono::steady_clock::now();
    for (int attempt = 1; attempt <= cfg_.reconnect_attempts && !signals_.stop; ++attempt) {
        wait(std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt - std::chrono::steady_clock::now()));
        next_attempt = std::chrono::steady_clock::now() + std::chrono::seconds(cfg_.reconnect_interval);
        log::warning("primary not answering, attempt " + std::to_string(attempt) + " of " +
                     std::to_string(cfg_.reconnect_attempts));
        check_primary(o, remote_timeout());
        if (o.primary_answers || !o.primary_refused.empty()) return;
    }
    o.primary_lost = !signals_.stop;
}

// The monitoring history: one repl_monitor row on the primary per pass, pruned hourly.
void Monitor::record_monitoring(Observation& o) {
    try {
        StandbyPositions mine = query_standby_positions(*local_, kQueryTimeout);
        MonitoringRow row;
        row.primary_node = *primary_id_;
        row.standby_node = cfg_.node;
        row.primary_lsn = query_current_lsn(*primary_, remote_timeout());
        o.primary_lsn = row.primary_lsn;
        row.received = mine.received;
        row.replayed = mine.replayed;
        row.last_replayed_xact_time = mine.last_replayed_xact_time;
        auto p = parse_lsn(row.primary_lsn).value_or(0);
        auto rcv = parse_lsn(mine.received.value_or(mine.replayed.value_or("0/0"))).value_or(0);
        auto rpl = parse_lsn(mine.replayed.value_or("0/0")).value_or(0);
        row.replication_lag = p > rcv ? static_cast<long long>(p - rcv) : 0;
        row.apply_lag = rcv > rpl ? static_cast<long long>(rcv - rpl) : 0;
        Metadata meta(*primary_, cfg_.cluster, remote_timeout());
        meta.record_monitoring(row);
        auto now = std::chrono::steady_clock::now();
        if (now - last_prune_ > timeouts::kMonitoringPrune) {
            meta.prune_monitoring(cfg_.node, cfg_.monitoring_history_days);
            last_prune_ = now;
        }
        flush_events(*primary_, remote_timeout());
        log::debug("monitored: lag " + std::to_string(row.replication_lag) + " bytes, apply lag " +
                   std::to_string(row.apply_lag) + " bytes");
    } catch (const Error& e) {
        log::warning(std::string("could not record monitoring: ") + e.what());
        primary_.reset();
    }
}

// The primary answered fenced: it takes no writes, and never will again by itself. The
// other active nodes are asked whether one accepts writes, not fenced: the successor,
// followed (candidate_) unless this node's WAL is past its fork.
void Monitor::find_successor(Observation& o) {
    Metadata local_meta(*local_, cfg_.cluster, kQueryTimeout);
    for (const Node& n : local_meta.nodes()) {
        if (!n.active || n.id == cfg_.node || (primary_id_ && n.id == *primary_id_)) continue;
        try {
            Connection c = Connection::open(n.conninfo, quick_connect());
            UpstreamState there = query_upstream_state(c, remote_timeout());
            if (there.in_recovery || there.read_only) continue;
            judge_follow(o, n, &c);
            return;
        } catch (const Error& e) {
            log::debug("node " + std::to_string(n.id) + " not asked whether it accepts writes: " + e.what());
        }
    }
}

// Whether this node can follow n, a primary, as standby follow judges it: its WAL not past
// the point where n's timeline forked from this node's, by what it replayed (received WAL
// past the fork that replay cannot reach is an unfinished record, which follow accepts).
// When it cannot, o.needs_rejoin says why and what to run; n becomes o.successor either way.
void Monitor::judge_follow(Observation& o, const Node& n, Connection* open) {
    o.successor = n.id;
    candidate_ = n;
    try {
        std::optional<Connection> own;
        Connection& c = open ? *open : own.emplace(Connection::open(n.conninfo, quick_connect()));
        WalPosition theirs = query_wal_position(c, remote_timeout());
        Conninfo ci = parse_conninfo(n.conninfo);
        auto history = parse_timeline_history(timeline_history(c, ci, theirs.timeline, remote_timeout()));
        auto primary_lsn = parse_lsn(theirs.lsn).value_or(0);
        WalPosition mine = query_wal_position(*local_, kQueryTimeout);
        StandbyPositions at = query_standby_positions(*local_, kQueryTimeout);
        auto replayed = parse_lsn(at.replayed.value_or(mine.lsn)).value_or(0);
        FollowVerdict v = can_follow(mine.timeline, replayed, theirs.timeline, primary_lsn, history);
        if (v.ok) return;
        o.needs_rejoin = "this node cannot follow node " + std::to_string(n.id) + ", the primary on timeline " +
                         std::to_string(theirs.timeline) + ": " + v.reason + "; stop its server and run \"repmgr -f " +
                         cfg_.path + " node rejoin -h " + ci.get("host").value_or("<host>") +
                         (ci.get("port") ? " -p " + *ci.get("port") : std::string()) + "\"";
    } catch (const Error& e) {
        log::info("node " + std::to_string(n.id) + ": whether this node can follow it is unknown: " + e.what());
    }
}

// What every other active node but the lost primary says, and the election's verdict.
// A fenced primary (primary_fenced) takes no writes whoever streams from it: that a node
// still does proves nothing.
Decision Monitor::hold_election(bool primary_fenced) {
    Metadata local_meta(*local_, cfg_.cluster, kQueryTimeout);
    std::vector<Node> nodes = local_meta.nodes();
    int registered_active = 0;
    std::vector<Peer> peers;
    auto window = std::chrono::duration_cast<std::chrono::seconds>(timeouts::failover_window(cfg_));
    std::vector<Endpoint> primary_at;  // where the lost primary listens, as registered
    for (const auto& n : nodes) {
        if (!primary_id_ || n.id != *primary_id_) continue;
        try {
            primary_at = endpoints_of(parse_conninfo(n.conninfo));
        } catch (const Error& e) {
            log::warning("primary node " + std::to_string(n.id) + ": " + e.what());
        }
    }
    for (const auto& n : nodes) {
        if (!n.active) continue;
        ++registered_active;
        if (n.id == cfg_.node || (primary_id_ && n.id == *primary_id_)) continue;
        Peer p;
        p.id = n.id;
        p.priority = n.priority;
        try {
            Connection c = Connection::open(n.conninfo, quick_connect());
            PeerView v = query_peer_view(c, window, remote_timeout());
            p.reachable = true;
            p.in_recovery = v.in_recovery;
            p.wal_end = parse_lsn(v.wal_end).value_or(0);
            // Its upstream is the lost primary however either names it (a name or its
            // address, a socket directory spelt another way).
            p.sees_primary = !primary_fenced && v.receiver_heard && v.sender_host && v.sender_port &&
                             same_server({Endpoint{*v.sender_host, std::to_string(*v.sender_port)}}, primary_at);
        } catch (const ConnectionError& e) {
            if (e.server_alive()) p.refused = std::string(describe(e.failure()));
            log::info("node " + std::to_string(n.id) + (e.server_alive() ? " refused the connection: " : " unreachable: ") +
                      e.what());
        } catch (const Error& e) {
            log::info("node " + std::to_string(n.id) + " unreachable: " + e.what());
        }
        peers.push_back(p);
    }
    Peer self;
    self.id = cfg_.node;
    self.priority = cfg_.priority;
    self.reachable = true;
    self.wal_end = parse_lsn(query_wal_position(*local_, kQueryTimeout).lsn).value_or(0);
    PeerView mine = query_peer_view(*local_, window, kQueryTimeout);
    self.sees_primary = !primary_fenced && mine.receiver_heard && mine.sender_host && mine.sender_port &&
                        same_server({Endpoint{*mine.sender_host, std::to_string(*mine.sender_port)}}, primary_at);

    // With the leader key, its lease is what the old primary's fence is timed against.
    auto promote_after = timeouts::promote_after(cfg_);
    auto hold = leader_ ? std::chrono::milliseconds{0} : promotion_hold(primary_failing(), promote_after);
    Decision d = hold_promotion(elect(self, peers, registered_active), hold, promote_after);
    if (leader_ && d.action == Decision::Action::Promote) d = take_leader_key(d);
    log::notice("failover: " + d.reason);
    if (hold.count() > 0) log::info("failover: the promotion is held " + timeouts::format(hold) + " more");
    if (!last_decision_ || last_decision_->action != d.action || last_decision_->reason != d.reason) {
        last_decision_ = d;
        using A = Decision::Action;
        std::string what = d.action == A::Promote  ? "promote"
                           : d.action == A::Follow ? "follow node " + std::to_string(d.node_id)
                                                   : "wait";
        queue_event({cfg_.node, "failover_decision", d.action != A::Wait, what + ": " + d.reason,
                     d.action == A::Follow ? std::optional<int>(d.node_id) : primary_id_});
    }
    candidate_.reset();
    if (d.action == Decision::Action::Follow)
        for (const auto& n : nodes)
            if (n.id == d.node_id) candidate_ = n;
    return d;
}

ChildOutcome Monitor::promote() {
    // The leader key taken for it is renewed while the promotion runs (the loop waits on
    // it), by a thread with a client of its own, every second.
    std::atomic<bool> done{false};
    std::atomic<std::chrono::steady_clock::rep> kept{0};
    std::thread keeper;
    if (leader_ && leader_->holds())
        keeper = std::thread([&done, &kept, lease = leader_->lease(), cfg = cfg_] {
            etcd::Client etcd(cfg);
            while (!done) {
                auto started = std::chrono::steady_clock::now();
                try {
                    if (etcd.keepalive(lease).count() > 0) kept = started.time_since_epoch().count();
                } catch (const Error& e) {
                    log::debug(std::string("etcd: leader key not renewed: ") + e.what());
                }
                for (int i = 0; i < 10 && !done; ++i) std::this_thread::sleep_for(100ms);
            }
        });
    // --force: the election already judged the primary lost; a frozen primary would
    // otherwise keep this standby's receiver "streaming" until wal_receiver_timeout.
    ChildOutcome out = run_self({"standby", "promote", "--force"}, cfg_.promote_command);
    done = true;
    if (keeper.joinable()) keeper.join();
    if (kept.load() != 0)
        key_renewed_ = std::max(key_renewed_, std::chrono::steady_clock::time_point(
                                                  std::chrono::steady_clock::duration(kept.load())));
    if (out.ok) primary_.reset();
    else release_leader_key();
    return out;
}

// The candidate promotes itself; follow once it accepts writes.
ChildOutcome Monitor::follow_candidate() {
    if (!candidate_) return {false, "no candidate to follow"};
    // The candidate may hold its promotion for the fence (promote_after) first.
    auto window = std::chrono::ceil<std::chrono::seconds>(timeouts::failover_window(cfg_) + timeouts::promote_after(cfg_));
    Busy busy(board_, window + timeouts::kDaemonChild);
    auto until = std::chrono::steady_clock::now() + window;
    bool writable = false;
    while (!writable && !signals_.stop && std::chrono::steady_clock::now() < until) {
        try {
            Connection c = Connection::open(candidate_->conninfo, quick_connect());
            writable = !query_in_recovery(c, remote_timeout());
        } catch (const Error&) {
        }
        if (!writable) wait(100ms);
    }
    if (!writable)
        return {false, "node " + std::to_string(candidate_->id) + " did not become the primary within " +
                           std::to_string(window.count()) + " s"};
    // Named, so follow need not probe every node (a frozen one costs a timeout).
    Conninfo ci = parse_conninfo(candidate_->conninfo);
    std::vector<std::string> follow = {"standby", "follow", ci.get("host").value_or("")};
    if (auto port = ci.get("port")) follow.insert(follow.end(), {"-p", *port});
    ChildOutcome out = run_self(follow, cfg_.follow_command);
    if (out.ok) primary_.reset();
    return out;
}

// A planned switchover stopped the primary. The candidate waits to be promoted (the old
// primary's daemon does it); every other standby follows the candidate once it accepts
// writes, checking for a pass's length.
void Monitor::await_switchover(Observation& o) {
    check_primary(o, timeouts::health_check(cfg_));
    if (o.primary_answers || !o.switchover || o.switchover->candidate_node_id == cfg_.node) return;
    Metadata local_meta(*local_, cfg_.cluster, kQueryTimeout);
    auto candidate = local_meta.node(o.switchover->candidate_node_id);
    if (!candidate) return;
    // The old primary, demoted, already streams from the candidate.
    PeerView mine = query_peer_view(*local_, std::chrono::seconds(cfg_.reconnect_interval), kQueryTimeout);
    if (mine.receiver_heard && mine.sender_host && mine.sender_port &&
        same_server(std::vector<Endpoint>{{*mine.sender_host, std::to_string(*mine.sender_port)}},
                    endpoints_of(parse_conninfo(candidate->conninfo)))) {
        o.follow = ChildOutcome{true, "already streaming from node " + std::to_string(candidate->id)};
        return;
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(cfg_.monitor_interval_secs);
    do {
        try {
            Connection c = Connection::open(candidate->conninfo, quick_connect());
            if (!query_in_recovery(c, remote_timeout())) {
                candidate_ = candidate;
                o.follow = follow_candidate();
                return;
            }
        } catch (const Error&) {
        }
        wait(50ms);
    } while (std::chrono::steady_clock::now() < until && !signals_.stop);
}

void Monitor::resume_failover(long long generation) {
    resume_generation_ = generation;
    woken_ = true;
}

// Failover is paused as this node's metadata says (written on the primary, replicated
// here), unless this daemon was asked to go on despite that very pause.
void Monitor::read_pause(Observation& o) {
    std::optional<FailoverPause> pause;
    try {
        pause = Metadata(*local_, cfg_.cluster, kQueryTimeout).failover_pause();
    } catch (const Error& e) {
        if (!local_->ok()) throw;
        // A query that failed (lock_timeout, a recovery conflict) neither lifts a pause nor
        // makes one: a paused primary would fence, a paused standby promote.
        log::warning(std::string("failover pause not read, counted as the last pass read it (") +
                     (paused_ ? "paused" : "not paused") + "): " + e.what());
        o.paused = paused_;
        o.pause_overridden = pause_overridden_;
        return;
    }
    if (!pause || !pause->paused) return;
    o.pause_overridden = pause->generation == resume_generation_;
    o.paused = !o.pause_overridden;
}

// A planned switchover in this node's metadata that is active and before its deadline.
std::optional<SwitchoverRequest> Monitor::planned_switchover() {
    try {
        auto req = Metadata(*local_, cfg_.cluster, kQueryTimeout).latest_switchover();
        if (req && req->active()) return req;
    } catch (const Error& e) {
        if (!local_->ok()) throw;
        log::debug(std::string("switchover requests not read: ") + e.what());
    }
    return std::nullopt;
}

// --------------------------------------------------------------------------------------
// Steps of a primary

// The primary's session LISTENs for switchover requests, so wait() wakes on one.
void Monitor::listen_for_switchover() {
    if (listening_) return;
    try {
        Metadata meta(*local_, cfg_.cluster, kQueryTimeout);
        if (meta.version() < 3) return;  // brought up to date by the heartbeat first
        meta.listen_switchover();
        listening_ = true;
    } catch (const Error& e) {
        log::debug(std::string("not listening for switchover requests: ") + e.what());
    }
}

// Who is there: reachable nodes count toward a majority; another node on a newer
// timeline, writable or a standby of such a node, means this node is a former primary.
// Every node at once, over connections kept between passes: a silent node costs one reconnect interval per pass, not one per node,
// and a new backend every second would be work for them.
void Monitor::probe_nodes(Observation& o) {
    WalPosition mine = query_wal_position(*local_, kQueryTimeout);
    Metadata meta(*local_, cfg_.cluster, kQueryTimeout);
    std::vector<Node> others;
    o.nodes_active = 0;
    for (const auto& n : meta.nodes()) {
        if (!n.active) continue;
        ++o.nodes_active;
        if (n.id != cfg_.node) others.push_back(n);
    }
    // The round's start: every answer it counts came after it. The count of time without
    // a majority starts when this node becomes the primary (with failover = manual,
    // nobody promotes, and it never counts); it goes on across passes that could not
    // reach this node's own server.
    auto round = std::chrono::steady_clock::now();
    bool counting = o.automatic && (state_ == State::Primary || state_ == State::LocalServerDown) &&
                    last_majority_.time_since_epoch().count() != 0;
    if (!counting) last_majority_ = round;
    // The lease: held back only by a pause (the standbys hold their promotion then too);
    // once it ran out, what it did decides this pass. Taken again after a pause whose
    // count ran past fence_after, it waits for this round (lease_until): a primary whose
    // cut healed, or whose server was only restarted, is not fenced for it.
    if (auto ran = lease_.ran()) {
        o.lease_fenced = ran->failed;
    } else if (o.automatic && !o.paused) {
        if (!leader_)
            lease_.renew(lease_until(last_majority_, timeouts::fence_after(cfg_), round, timeouts::probe_round(cfg_),
                                     lease_.armed()),
                         lease_fence());
    } else {
        lease_.cancel();
    }
    auto reached = [&](int visible) {
        if (!sees_majority(visible, o.nodes_active) || last_majority_ == round) return;
        last_majority_ = round;
        if (!leader_ && !o.lease_fenced && o.automatic && !o.paused)
            lease_.renew(round + timeouts::fence_after(cfg_), lease_fence());
    };
    reached(1);

    std::vector<std::future<NodeSeen>> seen;
    // A node no longer registered, or no longer active, loses its link: kept, it would
    // hold a backend there for as long as this daemon runs.
    std::set<int> ids;
    for (const Node& n : others) ids.insert(n.id);
    std::erase_if(node_links_, [&ids](const auto& link) { return !ids.contains(link.first); });
    for (const Node& n : others) node_links_.try_emplace(n.id);
    for (const Node& n : others) {
        seen.push_back(std::async(std::launch::async, [this, &n, &link = node_links_.at(n.id)] {
            NodeSeen s;
            s.id = n.id;
            try {
                if (!link.conn || !link.conn->ok() || link.conninfo != n.conninfo) {
                    link.conn.reset();
                    link.conn.emplace(Connection::open(n.conninfo, quick_connect()));
                    link.conninfo = n.conninfo;
                }
                s.in_recovery = query_in_recovery(*link.conn, remote_timeout());
                s.reachable = true;
                // A standby's too: one that follows a newer primary is on its timeline.
                // (Unread, it stays 0: the node counts, as it did before it was read.)
                s.timeline = query_wal_position(*link.conn, remote_timeout()).timeline;
            } catch (const ConnectionError& e) {
                // A node that answered, even to refuse us, is there: it counts.
                s.reachable = e.server_alive();
                link.conn.reset();
            } catch (const Error&) {
                link.conn.reset();
            }
            return s;
        }));
    }
    // Every node at once: a silent one costs one probe round per pass, not one per node.
    // The lease is renewed as soon as a majority answered, not when the slowest did.
    std::vector<NodeSeen> found(seen.size());
    std::vector<bool> done(seen.size(), false);
    int visible = 1;
    for (size_t left = seen.size(); left > 0;) {
        for (size_t i = 0; i < seen.size(); ++i) {
            if (done[i] || seen[i].wait_for(10ms) != std::future_status::ready) continue;
            found[i] = seen[i].get();
            done[i] = true;
            --left;
            if (found[i].reachable && found[i].timeline <= mine.timeline) reached(++visible);
        }
    }
    tally_nodes(o, mine.timeline, found);
    if (counting && !sees_majority(o.nodes_visible, o.nodes_active))
        log::warning("this primary sees " + std::to_string(o.nodes_visible) + " of " +
                     std::to_string(o.nodes_active) + " nodes");
    o.majority_seen = last_majority_;
    o.without_majority =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - last_majority_);
    o.fence_after = timeouts::fence_after(cfg_);
}

// The primary's heartbeat (repl_nodes.last_seen), after bringing an older schema (one
// without last_seen) to the newest version, once; then the state changes waiting.
void Monitor::record_heartbeat() {
    try {
        Metadata meta(*local_, cfg_.cluster, kQueryTimeout);
        if (!schema_current_ && !meta.current()) meta.install_or_upgrade();
        schema_current_ = true;
        // This node's own bookkeeping commits here, without waiting for synchronous
        // standbys: a new primary whose standbys do not follow it yet would otherwise stall
        // its loop for the query timeout at every pass, past its lease, and fence itself.
        meta.commit_locally();
        meta.record_last_seen(cfg_.node);
        flush_events(*local_, kQueryTimeout);
        local_->exec("RESET synchronous_commit", {}, kQueryTimeout);
    } catch (const Error& e) {
        if (local_->ok()) {
            try {
                local_->exec("RESET synchronous_commit", {}, kQueryTimeout);
            } catch (const Error&) {
            }
        }
        log::warning(std::string("could not record this primary as alive: ") + e.what());
    }
}

// dcs = etcd: renews the leader key, or takes it when nobody holds it, and times the lease
// from the start of the last renewal etcd answered. Without one since this node became
// the primary, from the start of that pass.
void Monitor::hold_leader_key(Observation& o) {
    o.leader_key = true;
    const auto pass = std::chrono::steady_clock::now();
    if (key_renewed_.time_since_epoch().count() == 0 || !o.automatic) key_renewed_ = pass;
    if (key_fence_after_.count() == 0) key_fence_after_ = timeouts::etcd_fence_after(cfg_);
    try {
        LeaderKey::Renewal r = leader_->hold();
        key_answered_ = r.claim.held ? r.renewed : std::chrono::steady_clock::time_point{};
        if (r.claim.held) {
            key_renewed_ = r.renewed;
            key_fence_after_ = timeouts::etcd_fence_after(r.ttl);
            if (!leader_error_.empty()) log::notice("etcd: the leader key is renewed again");
            leader_error_.clear();
        } else if (r.claim.holder) {
            o.leader_elsewhere = r.claim.holder;
        } else {
            log::warning("etcd: the leader key \"" + cfg_.etcd_prefix + "leader\" could not be taken" +
                         (r.claim.holder_value.empty() ? std::string(" (it ended meanwhile)")
                                                       : " (it holds \"" + r.claim.holder_value + "\", not a node id under a lease)"));
        }
    } catch (const Error& e) {
        if (leader_error_ != e.what())
            log::warning(std::string("could not renew the leader key: ") + e.what() +
                         (e.detail().empty() ? "" : ": " + e.detail()));
        leader_error_ = e.what();
    }
    o.fence_after = key_fence_after_;
    o.key_renewed = key_answered_;
    o.key_trust = key_fence_after_ - timeouts::health_check(cfg_);
    if (!o.lease_fenced && o.automatic && !o.paused) lease_.renew(key_renewed_ + key_fence_after_, lease_fence());
}

// The candidate promotes only once it holds the leader key: etcd creates it only while no
// lease holds it, so the old primary's has ended, and with it, on that primary's clock,
// its writes (it fenced). Without etcd, or with the key held, it waits; with
// etcd_failover_on_refusal, a lost primary's lease may be revoked first
// (end_lease_on_refusal): its server refused every check and its daemon is silent.
Decision Monitor::take_leader_key(Decision d) {
    using A = Decision::Action;
    try {
        LeaderKey::Renewal r = leader_->hold();
        std::string revoked;  // why the holder's lease was ended
        if (!r.claim.held && r.claim.holder && r.claim.holder_lease != 0) {
            LeaseEnd end = end_lease_on_refusal(cfg_.etcd_failover_on_refusal, primary_failing(), primary_id_,
                                                *r.claim.holder, std::nullopt);
            if (end.action == LeaseEnd::Action::Ask)
                end = end_lease_on_refusal(true, primary_failing(), primary_id_, *r.claim.holder,
                                           leader_->published(*r.claim.holder));
            if (end.action == LeaseEnd::Action::Revoke) {
                log::notice("etcd: " + end.reason);
                leader_->revoke(r.claim.holder_lease);
                revoked = end.reason;
                r = leader_->hold();
            } else if (!end.reason.empty()) {
                d = {d.action, d.node_id, d.reason + "; " + end.reason};
            }
        }
        if (r.claim.held) {
            key_renewed_ = r.renewed;
            key_fence_after_ = timeouts::etcd_fence_after(r.ttl);
            return {d.action, d.node_id,
                    d.reason + "; it holds the leader key in etcd" + (revoked.empty() ? "" : " (" + revoked + ")")};
        }
        if (r.claim.holder)
            return {A::Wait, 0, "node " + std::to_string(*r.claim.holder) +
                                    " holds the leader key in etcd: no promotion before its lease ends (" + d.reason +
                                    ")"};
        return {A::Wait, 0, "the leader key in etcd could not be taken: no promotion without it (" + d.reason + ")"};
    } catch (const Error& e) {
        return {A::Wait, 0, std::string("etcd cannot be reached, and no standby promotes without the leader key (") +
                                e.what() + (e.detail().empty() ? "" : ": " + e.detail()) + ")"};
    }
}

void Monitor::release_leader_key() {
    if (!leader_ || !leader_->holds()) return;
    try {
        leader_->release();
        log::notice("etcd: the leader key is released");
    } catch (const Error& e) {
        log::warning(std::string("etcd: could not release the leader key (its lease ends by itself): ") + e.what());
    }
}

// Once promoted despite the pause, lift it, so that the cluster is not left paused by
// an unpause that reached only the daemons; unless someone changed it meanwhile. Tried
// each pass until it is done.
void Monitor::lift_pause() {
    try {
        Metadata meta(*local_, cfg_.cluster, kQueryTimeout);
        auto pause = meta.failover_pause();
        if (pause && pause->paused && pause->generation == *lift_pause_) {
            std::string details = "failover went on despite the pause (\"repmgr service unpause\" while no primary "
                                  "could be reached); node " + std::to_string(cfg_.node) + ", promoted, lifts it";
            if (meta.set_failover_paused(false, cfg_.node, "repmgrd of node " + std::to_string(cfg_.node), details)
                    .changed)
                record_event(cfg_, nullptr, {cfg_.node, "daemon_unpause", true, details});  // its row went with it
            log::notice("failover pause lifted: this node was promoted while the metadata said paused");
        }
        lift_pause_.reset();
    } catch (const Error& e) {
        log::warning(std::string("could not lift the failover pause: ") + e.what());
    }
}

bool Monitor::fence_stops() const { return cfg_.fence == "shutdown" && !cfg_.data_directory.empty(); }

std::string Monitor::fence(const std::string& why) {
    log::error("fencing this primary: " + why);
    return fence_server(cfg_, local_ ? &*local_ : nullptr, true);
}

std::string Monitor::fence_server(const Config& cfg, Connection* conn, bool on_loop) {
    std::string failed;
    bool standby = false;  // in recovery by now (rejoined while a failed fence was retried)
    try {
        std::optional<Connection> own;
        auto local = [&]() -> Connection& {
            if (!conn || !conn->ok())
                conn = &own.emplace(Connection::open(
                    cfg.conninfo, ConnectOptions{.connect_timeout = timeouts::kDaemonLocalConnect,
                                                 .deadline = timeouts::kFenceConnect}));
            return *conn;
        };
        const auto timeout = on_loop ? kQueryTimeout : timeouts::kFenceQuery;  // the lease's is bounded
        const bool stops = cfg.fence == "shutdown" && !cfg.data_directory.empty();
        if (stops) {
            // A server that answers in recovery is a standby: left running. One that does
            // not answer is stopped all the same (it may be frozen, or gone already).
            try {
                standby = query_in_recovery(local(), timeout);
            } catch (const Error&) {
            }
        } else {
            try {
                standby = !make_read_only(local(), timeout);
            } catch (const Error& e) {
                // It runs but does not answer (frozen, hung): fenced through its
                // configuration file and a signal it takes first thing once it runs again,
                // so that it takes no write when it thaws, however late that is.
                auto* refused = dynamic_cast<const ConnectionError*>(&e);
                bool unanswered = (refused && !refused->server_alive()) || dynamic_cast<const QueryTimedOut*>(&e);
                if (!unanswered || cfg.data_directory.empty()) throw;
                std::string offline = make_read_only_unanswered(cfg.data_directory);
                if (!offline.empty()) throw Error(ExitCode::DbConnection, std::string(e.what()) + "; " + offline);
            }
        }
        if (stops && !standby) {
            ExecResult res = LocalServer(cfg.data_directory, &cfg).stop("fast");
            if (!res.ok()) {
                const std::string stop = server_control_hint(&cfg, cfg.data_directory, "stop");
                log::error("fencing: " + stop + " failed: " + res.err);
                failed = stop + " failed: " + last_line(res.err);
            }
        }
    } catch (const Error& e) {
        // The lease's thread says it once per failure, not at each retry.
        if (on_loop) log::error(std::string("fencing failed: ") + e.what());
        failed = e.what();
    }
    if (standby) {
        // It takes no writes: nothing to fence, and a fence written now would outlive its
        // next promotion (the lease retries a failed fence until it succeeds).
        log::notice("not fencing: this node's server is in recovery now (a standby)");
        return "";
    }
    if (failed.empty())
        log::notice(std::string("this primary is fenced (") +
                    (cfg.fence == "shutdown" && !cfg.data_directory.empty() ? "server stopped" : "read-only") + ")");
    if (!cfg.fence_command.empty()) {
        ChildOutcome ran = run_self({}, cfg.fence_command, on_loop);
        if (!ran.ok) failed += (failed.empty() ? "" : "; ") + ran.message;
    }
    return failed;
}

// What the lease runs when it runs out, on its own thread: the settings in use now, its
// own connection (the loop's may be busy), logged once per outcome.
FenceLease::Fence Monitor::lease_fence() {
    auto cfg = std::make_shared<const Config>(cfg_);
    auto last = std::make_shared<std::optional<std::string>>();  // the last attempt's failure
    return [this, cfg, last, key_fence_after = key_fence_after_] {
        if (!*last && cfg->dcs == "etcd")
            log::error("fencing this primary: it could not renew its leader key in etcd for " +
                       timeouts::format(key_fence_after) + " (etcd_fence_after); its lease ran out");
        else if (!*last)
            log::error("fencing this primary: cut off from a majority of the cluster: no probe round reached one for " +
                       timeouts::format(timeouts::fence_after(*cfg)) + " (fence_after); its lease ran out");
        std::string failed = fence_server(*cfg, nullptr, false);
        if (!failed.empty() && failed != last->value_or("")) log::error("fence failed, trying again: " + failed);
        *last = failed;
        return failed;
    };
}

// --------------------------------------------------------------------------------------
// Commands it runs

// Runs pgrm's own command (the same code path as typing it) with --json, or the
// configured override. Whatever the outcome, what the command logged goes into the
// daemon's log: a warning from a command that succeeded matters too.
ChildOutcome Monitor::run_self(const std::vector<std::string>& args, const std::string& override_command,
                               bool on_loop) {
    std::string what;  // prefixes what it logged: "standby promote", or the program
    for (const auto& a : args) what += (what.empty() ? "" : " ") + a;
    try {
        ExecSpec spec;
        if (!override_command.empty()) {
            spec.argv = split_command(override_command);
            if (!spec.argv.empty()) what = spec.argv.front();
        } else {
            spec.argv = {self_exe_, "repmgr", "-f", cfg_.path, "--json"};
            if (verbose_) spec.argv.push_back("--verbose");
            spec.argv.insert(spec.argv.end(), args.begin(), args.end());
        }
        spec.timeout = timeouts::kDaemonChild;
        log::notice("running: " + describe_argv(spec.argv));
        std::optional<Busy> busy;
        if (on_loop) busy.emplace(board_, spec.timeout + timeouts::kDaemonLocalQuery);  // and the time to kill it
        ExecResult res = run_program(spec);
        auto lines = [](const std::string& text, auto each) {
            for (size_t at = 0; at < text.size();) {
                size_t end = std::min(text.find('\n', at), text.size());
                if (end > at) each(std::string_view(text).substr(at, end - at));
                at = end + 1;
            }
        };
        lines(res.err, [&](std::string_view line) {
            auto [level, text] = read_log_line(line);
            log::write(level, what + ": " + text);
        });
        ChildOutcome outcome;
        if (override_command.empty()) {
            outcome = read_outcome(res);
        } else {
            // Someone else's program: its output as it is, success by exit status.
            lines(res.out, [&](std::string_view line) { log::notice(what + ": " + std::string(line)); });
            outcome = {res.ok(), what + (res.ok() ? " succeeded" : " failed (exit status " +
                                                                     std::to_string(res.exit_code) + ")")};
        }
        if (outcome.ok) log::notice(outcome.message.empty() ? what + " succeeded" : outcome.message);
        else log::error(what + " failed: " + outcome.message);
        return outcome;
    } catch (const Error& e) {
        log::error(what + " could not run: " + e.what());
        return {false, e.what()};
    }
}

}  // namespace pgrm::daemon
