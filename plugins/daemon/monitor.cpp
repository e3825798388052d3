#include "plugins/daemon/monitor.hpp"

#include <poll.h>

#include <future>
#include <thread>

#include "core/error.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/metadata.hpp"
#include "core/server.hpp"
#include "core/timeline.hpp"
#include "core/timeouts.hpp"
#include "plugins/daemon/child.hpp"
#include "plugins/daemon/election.hpp"

namespace pgrm::daemon {

namespace {

using namespace std::chrono_literals;

constexpr auto kQueryTimeout = timeouts::kDaemonLocalQuery;

const char* const kInRecoverySql = "SELECT pg_is_in_recovery()";
const char* const kAliveSql = "SELECT 1";
// This standby's positions and the time of the last transaction it replayed.
const char* const kStandbyPositionSql =
    "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, "
    "       pg_last_xact_replay_timestamp()";
const char* const kPrimaryLsnSql = "SELECT pg_current_wal_lsn()::text";
// The daemon's view of a sibling after the primary went silent: its role, its WAL end,
// and whether its WAL receiver still hears from the primary.
const char* const kPeerSql =
    "SELECT pg_is_in_recovery(), "
    "       coalesce(greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0')::text, "
    "       EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming' "
    "               AND sender_host = $2 AND sender_port = $3::int "
    "               AND last_msg_receipt_time > now() - make_interval(secs => $1))";
const char* const kFenceReadOnlySql = "ALTER SYSTEM SET default_transaction_read_only = on";
const char* const kReloadSql = "SELECT pg_reload_conf()";
const char* const kTerminateClientsSql =
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

std::string schema_of(Connection& c, const std::string& cluster) {
    return c.quote_identifier("repmgr_" + cluster);
}

}  // namespace

Monitor::Monitor(Config config, std::string self_exe, Signals& signals, bool verbose)
    : cfg_(std::move(config)), self_exe_(std::move(self_exe)), signals_(signals), verbose_(verbose) {}

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
    log::notice("repmgrd started for node " + std::to_string(cfg_.node) + " of cluster \"" + cfg_.cluster +
                "\" (failover " + cfg_.failover + ")");
    while (!signals_.stop) {
        if (signals_.reload) reload_config();
        try {
            if (!local_ || !local_->ok())
                local_.emplace(Connection::open(cfg_.conninfo, ConnectOptions{.connect_timeout = timeouts::kDaemonLocalConnect}));
            bool in_recovery = local_->exec(kInRecoverySql, {}, kQueryTimeout).get_bool(0, 0);
            if (!in_recovery && was_primary_ == false && registered_ && !promoted_by_us_ &&
                cfg_.failover == "manual") {
                log::error("this standby was promoted outside repmgrd; exiting as repmgr 1.0 did (ERR_PROMOTED)");
                return ExitCode::Promoted;
            }
            if (in_recovery) {
                if (was_primary_) {
                    log::notice("this node is now a standby; monitoring it as one");
                    node_links_.clear();
                }
                was_primary_ = false;
                standby_pass();
            } else {
                if (!was_primary_) {
                    log::notice("this node is the primary; watching liveness and quorum");
                    last_majority_ = std::chrono::steady_clock::now();
                }
                was_primary_ = true;
                primary_pass();
            }
            // Only a whole pass proves it: one that fails midway would log this every time.
            if (!local_error_.empty()) log::notice("local server answers again");
            local_error_.clear();
        } catch (const Error& e) {
            // Once per distinct failure, not every pass: a server down for an hour
            // should not bury the log.
            std::string why = std::string("local server: ") + e.what() + (e.detail().empty() ? "" : ": " + e.detail());
            if (why != local_error_) log::warning(why);
            else log::debug(why);
            local_error_ = why;
            local_.reset();
        }
        wait(std::chrono::seconds(cfg_.monitor_interval_secs));
    }
    log::notice("repmgrd stopping");
    return ExitCode::Success;
}

void Monitor::reload_config() {
    signals_.reload = false;
    try {
        Config fresh = load_config(cfg_.path);
        if (fresh.node != cfg_.node || fresh.cluster != cfg_.cluster)
            throw Error(ExitCode::BadConfig, "node and cluster cannot change while running");
        log::set_file(fresh.log_file);  // also reopens it, for logrotate
        log::Level level = *log::parse_level(fresh.log_level);
        log::set_level(verbose_ ? std::min(level, log::Level::Info) : level);
        cfg_ = fresh;
        log::notice("configuration reloaded from \"" + cfg_.path + "\"");
    } catch (const Error& e) {
        log::error(std::string("configuration not reloaded: ") + e.what());
    }
}

// A SIGHUP does not cut it short: the reload waits for the next pass, or the
// reconnect attempts would run back to back and declare a primary lost too soon.
void Monitor::wait(std::chrono::milliseconds duration) {
    auto until = std::chrono::steady_clock::now() + duration;
    while (!signals_.stop) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return;
        int slice = static_cast<int>(std::min<long long>(left.count(), 100));
        if (primary_ && primary_->ok()) {
            pollfd pfd{PQsocket(primary_->raw()), POLLIN, 0};
            if (::poll(&pfd, 1, slice) > 0) {
                PQconsumeInput(primary_->raw());
                if (PQstatus(primary_->raw()) != CONNECTION_OK) return;  // the primary hung up
            }
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(slice));
        }
    }
}

void Monitor::standby_pass() {
    Metadata local_meta(*local_, cfg_.cluster);
    if (!local_meta.installed()) {
        log::warning("no metadata for cluster \"" + cfg_.cluster + "\" yet: register the primary first");
        return;
    }
    // The seed's daemon registers its standby when it is missing.
    if (!registered_) {
        registered_ = local_meta.node(cfg_.node).has_value() || run_self({"standby", "register"}, "").ok;
        if (!registered_) return;
    }
    // The pass's check only raises suspicion, so it may be quick; the reconnect attempts
    // that confirm it each get the full interval.
    if (!primary_answers(timeouts::health_check(cfg_))) {
        if (!primary_lost_) {
            // Reconnect attempts before declaring it lost: the first at once, the next
            // ones reconnect_interval after the previous one started, so an attempt
            // that timed out on a frozen primary has already spent its interval.
            auto next_attempt = std::chrono::steady_clock::now();
            for (int attempt = 1; attempt <= cfg_.reconnect_attempts && !signals_.stop; ++attempt) {
                wait(std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt -
                                                                           std::chrono::steady_clock::now()));
                next_attempt = std::chrono::steady_clock::now() + std::chrono::seconds(cfg_.reconnect_interval);
                log::warning("primary not answering, attempt " + std::to_string(attempt) + " of " +
                             std::to_string(cfg_.reconnect_attempts));
                if (primary_answers(remote_timeout())) return;
            }
            primary_lost_ = true;
            log::error("primary node " + (primary_id_ ? std::to_string(*primary_id_) : std::string("?")) +
                       " is lost");
        }
        if (cfg_.failover == "automatic")
            failover();
        else if (!manual_notice_given_)
            log::notice("failover = manual: not promoting; run \"repmgr standby promote\" on the chosen standby");
        manual_notice_given_ = true;
        return;
    }
    if (primary_lost_) log::notice("a primary answers again");
    primary_lost_ = false;
    manual_notice_given_ = false;
    record_monitoring();
}

bool Monitor::primary_answers(std::chrono::milliseconds timeout) {
    try {
        Metadata local_meta(*local_, cfg_.cluster);
        auto primary = local_meta.active_primary();
        if (!primary) return false;
        if (!primary_ || !primary_->ok() || primary_id_ != primary->id) {
            primary_.reset();
            primary_.emplace(Connection::open(primary->conninfo, quick_connect()));
            primary_id_ = primary->id;
        }
        if (primary_->exec(kInRecoverySql, {}, timeout).get_bool(0, 0)) return false;
        return true;
    } catch (const Error& e) {
        log::info(std::string("primary check failed: ") + e.what());
        primary_.reset();
        return false;
    }
}

void Monitor::record_monitoring() {
    try {
        Rows mine = local_->exec(kStandbyPositionSql, {}, kQueryTimeout);
        std::string primary_lsn = primary_->exec(kPrimaryLsnSql, {}, remote_timeout()).get(0, 0);
        auto received = mine.get_opt(0, 0), replayed = mine.get_opt(0, 1);
        auto p = parse_lsn(primary_lsn).value_or(0);
        auto rcv = parse_lsn(received.value_or(replayed.value_or("0/0"))).value_or(0);
        auto rpl = parse_lsn(replayed.value_or("0/0")).value_or(0);
        long long replication_lag = p > rcv ? static_cast<long long>(p - rcv) : 0;
        long long apply_lag = rcv > rpl ? static_cast<long long>(rcv - rpl) : 0;
        std::string schema = schema_of(*primary_, cfg_.cluster);
        primary_->exec("INSERT INTO " + schema +
                           ".repl_monitor (primary_node, standby_node, last_monitor_time, "
                           "last_wal_primary_location, last_wal_standby_location, last_wal_standby_replayed, "
                           "replication_lag, apply_lag, last_replayed_xact_time) "
                           "VALUES ($1, $2, now(), $3, $4, $5, $6, $7, $8)",
                       {std::to_string(*primary_id_), std::to_string(cfg_.node), primary_lsn, received, replayed,
                        std::to_string(replication_lag), std::to_string(apply_lag), mine.get_opt(0, 2)},
                       remote_timeout());
        auto now = std::chrono::steady_clock::now();
        if (now - last_prune_ > timeouts::kMonitoringPrune) {
            primary_->exec("DELETE FROM " + schema + ".repl_monitor WHERE standby_node = $1 AND "
                           "last_monitor_time < now() - make_interval(days => $2)",
                           {std::to_string(cfg_.node), std::to_string(cfg_.monitoring_history_days)}, remote_timeout());
            last_prune_ = now;
        }
        log::debug("monitored: lag " + std::to_string(replication_lag) + " bytes, apply lag " +
                   std::to_string(apply_lag) + " bytes");
    } catch (const Error& e) {
        log::warning(std::string("could not record monitoring: ") + e.what());
        primary_.reset();
    }
}

void Monitor::failover() {
    Metadata local_meta(*local_, cfg_.cluster);
    std::vector<Node> nodes = local_meta.nodes();
    int registered_active = 0;
    std::vector<Peer> peers;
    std::vector<const Node*> peer_nodes;
    int window_s = static_cast<int>(timeouts::failover_window(cfg_).count());
    std::string primary_host, primary_port = "5432";
    for (const auto& n : nodes) {
        if (!primary_id_ || n.id != *primary_id_) continue;
        Conninfo ci = parse_conninfo(n.conninfo);
        primary_host = ci.get("host").value_or("");
        primary_port = ci.get("port").value_or("5432");
    }
    for (const auto& n : nodes) {
        if (!n.active) continue;
        ++registered_active;
        if (n.id == cfg_.node || (primary_id_ && n.id == *primary_id_)) continue;
        Peer p{n.id, n.priority};
        try {
            Connection c = Connection::open(n.conninfo, quick_connect());
            Rows r = c.exec(kPeerSql, {std::to_string(window_s), primary_host, primary_port}, remote_timeout());
            p.reachable = true;
            p.in_recovery = r.get_bool(0, 0);
            p.wal_end = parse_lsn(r.get(0, 1)).value_or(0);
            p.sees_primary = r.get_bool(0, 2);
        } catch (const Error& e) {
            log::info("node " + std::to_string(n.id) + " unreachable: " + e.what());
        }
        peers.push_back(p);
        peer_nodes.push_back(&n);
    }
    Peer self{cfg_.node, cfg_.priority, true, true, false, 0};
    self.wal_end = parse_lsn(query_wal_position(*local_).lsn).value_or(0);

    Decision d = elect(self, peers, registered_active);
    log::notice("failover: " + d.reason);
    if (d.action == Decision::Action::Promote) {
        promoted_by_us_ = true;
        // --force: the election already judged the primary lost; a frozen primary would
        // otherwise keep this standby's receiver "streaming" until wal_receiver_timeout.
        if (run_self({"standby", "promote", "--force"}, cfg_.promote_command).ok) {
            primary_lost_ = false;
            primary_.reset();
        } else {
            promoted_by_us_ = false;
        }
    } else if (d.action == Decision::Action::Follow) {
        // The candidate promotes itself; follow once it accepts writes.
        const Node* target = nullptr;
        for (const Node* n : peer_nodes) if (n->id == d.node_id) target = n;
        auto until = std::chrono::steady_clock::now() + timeouts::failover_window(cfg_);
        bool writable = false;
        while (target && !writable && !signals_.stop && std::chrono::steady_clock::now() < until) {
            try {
                Connection c = Connection::open(target->conninfo, quick_connect());
                writable = !c.exec(kInRecoverySql, {}, remote_timeout()).get_bool(0, 0);
            } catch (const Error&) {
            }
            if (!writable) wait(100ms);
        }
        if (!writable) {
            log::warning("node " + std::to_string(d.node_id) + " did not become the primary; electing again");
            return;
        }
        // Named, so follow need not probe every node (a frozen one costs a timeout).
        Conninfo ci = parse_conninfo(target->conninfo);
        std::vector<std::string> follow = {"standby", "follow", ci.get("host").value_or("")};
        if (auto port = ci.get("port")) follow.insert(follow.end(), {"-p", *port});
        if (run_self(follow, cfg_.follow_command).ok) {
            primary_lost_ = false;
            primary_.reset();
        }
    }
}

void Monitor::primary_pass() {
    Metadata meta(*local_, cfg_.cluster);
    if (!meta.installed() || !meta.node(cfg_.node)) return;
    std::string schema = schema_of(*local_, cfg_.cluster);

    // Who is there: reachable standbys count toward a majority; another writable node
    // on a newer timeline means this node is a former primary. Every node at once, over
    // connections kept between passes: a silent node costs one reconnect interval per
    // pass, not one per node, and a new backend every second would be work for them.
    auto pass_start = std::chrono::steady_clock::now();
    WalPosition mine = query_wal_position(*local_, kQueryTimeout);
    std::vector<Node> others;
    int active = 0, visible = 1;
    for (const auto& n : meta.nodes()) {
        if (!n.active) continue;
        ++active;
        if (n.id != cfg_.node) others.push_back(n);
    }
    struct Seen {
        bool reachable = false;
        bool in_recovery = true;
        int timeline = 0;
    };
    std::vector<std::future<Seen>> seen;
    for (const Node& n : others) node_links_.try_emplace(n.id);
    for (const Node& n : others) {
        seen.push_back(std::async(std::launch::async, [this, &n, &link = node_links_.at(n.id)] {
            Seen s;
            try {
                if (!link.conn || !link.conn->ok() || link.conninfo != n.conninfo) {
                    link.conn.reset();
                    link.conn.emplace(Connection::open(n.conninfo, quick_connect()));
                    link.conninfo = n.conninfo;
                }
                s.in_recovery = link.conn->exec(kInRecoverySql, {}, remote_timeout()).get_bool(0, 0);
                if (!s.in_recovery) s.timeline = query_wal_position(*link.conn, remote_timeout()).timeline;
                s.reachable = true;
            } catch (const Error&) {
                link.conn.reset();
            }
            return s;
        }));
    }
    for (size_t i = 0; i < others.size(); ++i) {
        Seen s = seen[i].get();
        if (!s.reachable) continue;
        ++visible;
        if (s.in_recovery || s.timeline <= mine.timeline || fenced_) continue;
        const Node& n = others[i];
        fence("node " + std::to_string(n.id) + " is the primary on newer timeline " + std::to_string(s.timeline) +
              "; this node is a former primary and must be rejoined");
        try {
            Metadata(*node_links_.at(n.id).conn, cfg_.cluster)
                .record_event(cfg_.node, "primary_fenced", true, "former primary found running; fenced");
        } catch (const Error& e) {
            log::warning(std::string("could not record the fence on node ") + std::to_string(n.id) + ": " + e.what());
        }
    }
    if (!fenced_) {
        try {
            if (!schema_current_) meta.install_or_upgrade();  // an older schema gains last_seen
            schema_current_ = true;
            local_->exec("UPDATE " + schema + ".repl_nodes SET last_seen = now() WHERE id = $1",
                         {std::to_string(cfg_.node)}, kQueryTimeout);
        } catch (const Error& e) {
            log::warning(std::string("could not record this primary as alive: ") + e.what());
        }
    }

    // Cut off from a majority since before a standby could declare it lost: fence, so a
    // partitioned primary stops taking writes before, as a rule, a standby is promoted.
    bool minority = cfg_.failover == "automatic" && active >= 3 && visible * 2 <= active;
    if (!minority) {
        last_majority_ = pass_start;
        return;
    }
    log::warning("this primary sees " + std::to_string(visible) + " of " + std::to_string(active) + " nodes");
    if (!fenced_ && std::chrono::steady_clock::now() - last_majority_ > timeouts::fence_after(cfg_))
        fence("cut off from a majority of the cluster for " + std::to_string(timeouts::fence_after(cfg_).count()) + " s");
}

void Monitor::fence(const std::string& why) {
    fenced_ = true;
    log::error("fencing this primary: " + why);
    try {
        if (cfg_.fence == "shutdown" && !cfg_.data_directory.empty()) {
            ExecResult res = LocalServer(cfg_.data_directory, &cfg_).stop("fast");
            if (!res.ok()) log::error("fencing: pg_ctl stop failed: " + res.err);
        } else {
            local_->exec(kFenceReadOnlySql, {}, kQueryTimeout);
            local_->exec(kReloadSql, {}, kQueryTimeout);
            local_->exec(kTerminateClientsSql, {}, kQueryTimeout);
        }
    } catch (const Error& e) {
        log::error(std::string("fencing failed: ") + e.what());
    }
    if (!cfg_.fence_command.empty()) run_self({}, cfg_.fence_command);
}

// Runs pgrm's own command (the same code path as typing it) with --json, or the
// configured override. Whatever the outcome, what the command logged goes into the
// daemon's log: a warning from a command that succeeded matters too.
ChildOutcome Monitor::run_self(const std::vector<std::string>& args, const std::string& override_command) {
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
            outcome = {res.ok(), res.ok() ? "succeeded" : "failed (exit status " + std::to_string(res.exit_code) + ")"};
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
