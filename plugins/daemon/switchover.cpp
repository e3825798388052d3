#include "plugins/daemon/switchover.hpp"

#include <algorithm>
#include <thread>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/recovery.hpp"
#include "core/rejoin.hpp"
#include "core/server.hpp"
#include "core/timeline.hpp"
#include "core/timeouts.hpp"

namespace pgrm::daemon {

namespace {

using namespace std::chrono_literals;

// Without waiting: pg_promote(true) checks only every 100 ms; we poll faster.
const char* const kPromoteSql = "SELECT pg_promote(false)";
const char* const kReplayedSql = "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn(), '0/0')::text";

constexpr auto kLocalQuery = timeouts::kDaemonLocalQuery;

class Demoter {
public:
    Demoter(const Config& cfg, std::optional<Connection>& local, const SwitchoverRequest& req,
            const DemotionLimits& limits)
        : cfg_(cfg), local_(local), req_(req), limits_(limits) {}

    Demotion run() {
        // 1. The candidate, reachable and a standby, before anything changes.
        Metadata meta(*local_, cfg_.cluster, kLocalQuery);
        auto candidate = meta.node(req_.candidate_node_id);
        if (!candidate) return refuse("node " + cand() + " is not registered");
        candidate_conninfo_ = candidate->conninfo;
        try {
            candidate_.emplace(Connection::open(candidate_conninfo_, limits_.connect));
            if (!query_in_recovery(*candidate_, limits_.query)) return refuse("node " + cand() + " is not a standby");
        } catch (const Error& e) {
            return refuse("node " + cand() + " does not answer: " + e.what());
        }
        data_directory_ = cfg_.data_directory.empty() ? show_setting(*local_, "data_directory") : cfg_.data_directory;
        // Committed (and replicated) before the shutdown: the standbys' daemons see that
        // the primary's shutdown is planned and start no failover.
        if (!meta.start_demotion(req_.id, "node " + std::to_string(cfg_.node) + " shutting down for node " + cand(),
                                 demotion_bound()))
            return {Demotion::End::Aborted, "the request is no longer waiting (expired or cancelled)"};

        // 2. A checkpoint first, while writes are still accepted: it flushes the bulk of what
        // clients dirtied, so the shutdown checkpoint, during which writes are refused, has
        // little left to write. It and the shutdown share shutdown_check_timeout, the
        // checkpoint half of it at most; one that fails or takes longer is no reason to stop
        // the switchover: the shutdown checkpoint writes what is left.
        const auto budget = std::chrono::seconds(cfg_.shutdown_check_timeout);
        const auto started = std::chrono::steady_clock::now();
        try {
            checkpoint(*local_, std::chrono::duration_cast<std::chrono::milliseconds>(budget) / 2);
        } catch (const Error& e) {
            log::warning(std::string("switchover: the checkpoint before the shutdown failed: ") + e.what());
        }
        log::notice("switchover: stopping this primary for node " + cand());
        local_.reset();

        // 3. A clean shutdown: a fast one ends once every connected standby has been sent
        // everything, the shutdown checkpoint included.
        LocalServer server(data_directory_, &cfg_);
        auto left = std::chrono::duration_cast<std::chrono::seconds>(budget - (std::chrono::steady_clock::now() - started));
        ExecResult stop = server.stop("fast", static_cast<int>(std::max<long long>(1, left.count())));
        if (!stop.ok()) {
            log::error("switchover: the server did not shut down within " +
                       std::to_string(cfg_.shutdown_check_timeout) + " s (shutdown_check_timeout); stopping it at once");
            ExecResult now = server.stop("immediate");
            if (!now.ok() && server.running())
                return {Demotion::End::Failed, "node " + self() + " neither shut down nor stopped at once: " + now.err};
            return abort("node " + self() + " did not shut down within " +
                         std::to_string(cfg_.shutdown_check_timeout) + " s (shutdown_check_timeout)");
        }

        // 4. Where the shutdown checkpoint is.
        ControlData control = read_control_data(data_directory_, CopyEnv{&cfg_, postgres_os_user(data_directory_)});
        auto shutdown_checkpoint = parse_lsn(control.checkpoint_lsn);
        if (control.state != "shut down" || !shutdown_checkpoint)
            return abort("pg_controldata says \"" + control.state + "\", not a clean shutdown");

        // 5. The candidate has replayed it: promoted, it continues exactly this history.
        if (std::string why = wait_for_replay(*shutdown_checkpoint); !why.empty())
            return candidate_left_recovery_ ? stay_stopped(why) : abort(why);

        // 6. This server's standby settings, before the promotion: from here on it never
        // starts as a primary by itself.
        configure_standby(data_directory_,
                          primary_conninfo_for(parse_conninfo(candidate_conninfo_), cfg_.node_name));
        standby_configured_ = true;

        // 7. The promotion. pg_promote() returning false removed its signal file: the
        // candidate stays a standby, abort. An error leaves the outcome unknown (the call
        // may have run, the promotion may still be under way): this server must not start
        // as a primary again, so it waits for the promotion and starts as a standby either way.
        try {
            if (!candidate_->exec(kPromoteSql, {}, limits_.query).get_bool(0, 0))
                return abort("pg_promote() on node " + cand() + " could not signal its postmaster");
        } catch (const Error& e) {
            log::warning("switchover: pg_promote() on node " + cand() + " gave no answer (" + e.what() +
                         "); waiting for its promotion, never starting this server as the primary again");
        }
        bool promoted = wait_for_promotion();
        if (promoted) log::notice("switchover: node " + cand() + " is the primary");

        // 8. This server, as the candidate's standby.
        ExecResult start = server.start();
        if (!promoted)
            return {Demotion::End::Failed,
                    "node " + cand() + " did not leave recovery after pg_promote(); node " + self() +
                        (start.ok() ? " runs as its standby" : " is stopped (" + server_control_hint(&cfg_, data_directory_, "start") + " failed)") +
                        ": no node accepts writes until node " + cand() + " is promoted"};
        if (!start.ok())
            return {Demotion::End::Failed, "node " + cand() + " is the primary; node " + self() +
                                               " is stopped, configured as its standby (" +
                                               server_control_hint(&cfg_, data_directory_, "start") + " failed: " +
                                               last_line(start) + ")"};
        return {Demotion::End::Demoted, "node " + self() + " is a standby of node " + cand() +
                                            ", the primary since the shutdown checkpoint at " +
                                            control.checkpoint_lsn};
    }

private:
    std::string self() const { return std::to_string(cfg_.node); }
    std::string cand() const { return std::to_string(req_.candidate_node_id); }
    static std::string last_line(const ExecResult& r) {
        std::string t = r.err.empty() ? r.out : r.err;
        while (!t.empty() && t.back() == '\n') t.pop_back();
        auto nl = t.rfind('\n');
        return nl == std::string::npos ? t : t.substr(nl + 1);
    }

    // How long the demotion can take at most: shutdown (then an immediate stop), catch-up,
    // promotion; and a margin for the hosts' clocks, by which the standbys judge the deadline.
    std::chrono::seconds demotion_bound() const {
        return std::chrono::seconds(cfg_.shutdown_check_timeout) + timeouts::kServerControl +
               timeouts::kSwitchoverCatchUp + timeouts::kServerControl + 30s;
    }

    // The candidate left recovery without this demotion's promotion (promoted by someone
    // else): starting this server as a primary would give two. It stays stopped.
    Demotion stay_stopped(const std::string& why) {
        log::error("switchover failed: " + why + "; this server stays stopped");
        return {Demotion::End::Failed, why + "; node " + self() + " stays stopped, not a second primary: run "
                                             "\"repmgr node rejoin\" on it once the cluster has one primary"};
    }

    // Nothing was changed yet: the request ends, the primary runs on.
    Demotion refuse(const std::string& why) {
        try {
            Metadata(*local_, cfg_.cluster, kLocalQuery).move_switchover(req_.id, "requested", "aborted", why);
        } catch (const Error& e) {
            log::warning(std::string("switchover: could not record the refusal: ") + e.what());
        }
        return {Demotion::End::Aborted, why};
    }

    // The server is stopped: it starts again as the primary, and the request ends there.
    Demotion abort(const std::string& why) {
        log::error("switchover aborted: " + why + "; starting this server as the primary again");
        if (standby_configured_) unconfigure_standby(data_directory_);
        ExecResult start = LocalServer(data_directory_, &cfg_).start();
        if (!start.ok())
            return {Demotion::End::Failed, why + "; then node " + self() + " did not start again (" + last_line(start) +
                                               "): no node accepts writes, node " + cand() + " is a standby"};
        // Notified even when this server cannot record it.
        std::optional<Metadata> meta;
        try {
            local_.emplace(Connection::open(cfg_.conninfo, ConnectOptions{.connect_timeout = timeouts::kDaemonLocalConnect}));
            meta.emplace(*local_, cfg_.cluster, kLocalQuery);
            meta->move_switchover(req_.id, "demoting", "aborted", why);
        } catch (const Error& e) {
            log::warning(std::string("switchover: could not record the abort: ") + e.what());
            meta.reset();
        }
        try {
            record_event(cfg_, meta ? &*meta : nullptr,
                         {cfg_.node, "standby_switchover", false, "aborted: " + why, req_.candidate_node_id});
        } catch (const Error& e) {
            log::warning(std::string("switchover: could not record the abort: ") + e.what());
        }
        return {Demotion::End::Aborted, why + "; node " + self() + " is the primary again"};
    }

    // Empty when the candidate has replayed past shutdown_checkpoint; else why not, in time.
    std::string wait_for_replay(unsigned long long shutdown_checkpoint) {
        auto until = std::chrono::steady_clock::now() + timeouts::kSwitchoverCatchUp;
        std::string last = "no answer";
        do {
            try {
                if (!candidate_ || !candidate_->ok())
                    candidate_.emplace(Connection::open(candidate_conninfo_, limits_.connect));
                Rows r = candidate_->exec(kReplayedSql, {}, limits_.query);
                if (!r.get_bool(0, 0)) {
                    candidate_left_recovery_ = true;
                    return "node " + cand() + " left recovery before it was promoted";
                }
                if (parse_lsn(r.get(0, 1)).value_or(0) > shutdown_checkpoint) return "";
                last = "replayed up to " + r.get(0, 1);
            } catch (const Error& e) {
                candidate_.reset();
                last = e.what();
            }
            std::this_thread::sleep_for(20ms);
        } while (std::chrono::steady_clock::now() < until);
        return "node " + cand() + " did not replay the shutdown checkpoint within " +
               std::to_string(timeouts::kSwitchoverCatchUp.count()) + " s (" + last + ")";
    }

    bool wait_for_promotion() {
        auto until = std::chrono::steady_clock::now() + timeouts::kServerControl;
        do {
            try {
                if (!candidate_ || !candidate_->ok())
                    candidate_.emplace(Connection::open(candidate_conninfo_, limits_.connect));
                if (!query_in_recovery(*candidate_, limits_.query)) return true;
            } catch (const Error&) {
                candidate_.reset();
            }
            std::this_thread::sleep_for(10ms);
        } while (std::chrono::steady_clock::now() < until);
        return false;
    }

    const Config& cfg_;
    std::optional<Connection>& local_;
    const SwitchoverRequest& req_;
    const DemotionLimits& limits_;
    std::string candidate_conninfo_;
    std::optional<Connection> candidate_;
    std::string data_directory_;
    bool standby_configured_ = false;
    bool candidate_left_recovery_ = false;  // promoted by someone else during the demotion
};

}  // namespace

Demotion demote_for_switchover(const Config& cfg, std::optional<Connection>& local, const SwitchoverRequest& request,
                               const DemotionLimits& limits) {
    return Demoter(cfg, local, request, limits).run();
}

}  // namespace pgrm::daemon
