// standby switchover: run on a standby, makes it the primary and the primary its standby,
// losing nothing and with no SSH: this command asks through the metadata (a request row
// on the primary and a NOTIFY), the primary's repmgrd does the demotion on its own host
// (plugins/daemon/switchover.cpp), and this command then records the new roles and
// proves the old primary replays from this node. Every other standby's daemon follows
// this node once it is the primary.
#include "plugins/standby/switchover.hpp"

#include <chrono>
#include <cmath>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/log.hpp"
#include "core/node_identity.hpp"
#include "core/server.hpp"
#include "core/timeline.hpp"
#include "core/timeouts.hpp"
#include "plugins/standby/standby.hpp"

namespace pgrm {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// More than one WAL segment behind is not "small lag": the primary's clean shutdown would
// wait for it while writes are refused.
constexpr unsigned long long kMaxLagBytes = 16ull * 1024 * 1024;

const char* const kReceiverSql =
    "SELECT sender_host, sender_port, coalesce(pg_last_wal_receive_lsn(), '0/0')::text "
    "FROM pg_catalog.pg_stat_wal_receiver WHERE status = 'streaming'";
const char* const kPrimaryLsnSql = "SELECT pg_current_wal_lsn()::text";
const char* const kReplayedSql = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= $1::pg_lsn";

std::string id(int n) { return std::to_string(n); }

std::string seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", s);
    return buf;
}

}  // namespace

std::vector<SwitchoverCheck> judge_switchover(const SwitchoverFacts& f) {
    std::vector<SwitchoverCheck> out;
    auto add = [&](std::string name, bool ok, std::string detail) { out.push_back({std::move(name), ok, std::move(detail)}); };
    add("this node is a standby", f.candidate_in_recovery,
        f.candidate_in_recovery ? "in recovery" : "node " + id(f.candidate) + " already accepts writes");
    add("the primary accepts writes", f.primary && f.primary_writable,
        !f.primary ? "no active primary in the metadata"
                   : f.primary_writable ? "node " + id(*f.primary)
                                        : "node " + id(*f.primary) + ": " + (f.primary_error.empty() ? "read-only" : f.primary_error));
    add("the metadata knows switchovers", f.schema_version >= 3,
        "schema version " + std::to_string(f.schema_version) +
            (f.schema_version >= 3 ? "" : "; the primary's repmgrd brings it up to date"));
    bool streams = f.primary && f.upstream == f.primary;
    add("this node streams from the primary", streams,
        !f.upstream ? "not streaming" : "from node " + id(*f.upstream));
    bool small = f.lag && *f.lag <= f.max_lag;
    add("replication lag is small", small,
        f.lag ? std::to_string(*f.lag) + " bytes (at most " + std::to_string(f.max_lag) + ")" : "unknown");
    auto alive = [&](const std::optional<double>& age) { return age && *age < f.daemon_fresh; };
    auto age = [&](const std::optional<double>& a, const std::string& what) {
        return a ? what + " " + seconds(*a) + " ago (alive: under " + seconds(f.daemon_fresh) + ")" : "never " + what;
    };
    add("the primary's repmgrd runs", alive(f.primary_daemon_age), age(f.primary_daemon_age, "heartbeat"));
    add("this node's repmgrd runs", alive(f.candidate_daemon_age), age(f.candidate_daemon_age, "monitoring row"));
    // Paused, the daemons are being kept still (maintenance): a switchover needs them.
    add("failover is not paused", !f.pause.paused,
        describe(f.pause) + (f.pause.paused ? "; \"repmgr service unpause\" resumes it" : ""));
    add("no other switchover is under way", !f.active,
        f.active ? "request " + std::to_string(f.active->id) + ": node " + id(f.active->primary_node_id) + " to node " +
                       id(f.active->candidate_node_id) + ", " + f.active->state
                 : "none");
    return out;
}

namespace {

class StandbySwitchover : public Command {
public:
    Spec spec() const override {
        return {"standby", "switchover", "",
                "makes this standby the primary and the primary its standby, losing nothing (needs repmgrd on both)",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    void declare(CLI::App& app) override {
        app.add_flag("--dry-run", dry_run_, "print the checks and the plan, change nothing");
        app.add_option("--wait", wait_s_, "seconds the whole switchover may take (default 120)")
            ->check(CLI::Range(10, 3600));
        // repmgr 5 needs this flag for what pgrm always does; its scripts pass it.
        app.add_flag("--siblings-follow")
            ->description("the other standbys follow the new primary (always; accepted as repmgr 5 takes it)");
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();
        started_ = Clock::now();

        // 1. What the checks need: this node, the metadata it has, the primary.
        Connection local = Connection::open(cfg.conninfo);
        Metadata local_meta(local, cfg.cluster);
        local_meta.require_installed();
        std::vector<Node> nodes = local_meta.nodes();
        SwitchoverFacts f;
        f.candidate = cfg.node;
        f.max_lag = kMaxLagBytes;
        f.daemon_fresh = static_cast<double>(timeouts::daemon_alive(cfg).count());
        f.candidate_in_recovery = query_server_facts(local).in_recovery;
        std::optional<Node> primary = local_meta.active_primary();
        std::optional<unsigned long long> received;
        if (f.candidate_in_recovery) {
            Rows r = local.exec(kReceiverSql);
            if (!r.empty()) {
                f.upstream = node_at(nodes, Endpoint{r.get(0, 0), r.get(0, 1)});
                received = parse_lsn(r.get(0, 2));
            }
        }
        std::optional<Connection> primary_conn;
        if (primary) {
            f.primary = primary->id;
            try {
                primary_conn.emplace(Connection::open(primary->conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect}));
                f.primary_writable = !query_server_facts(*primary_conn).in_recovery;
                Metadata meta(*primary_conn, cfg.cluster, timeouts::kProbeQuery);
                f.schema_version = meta.version();
                auto lsn = parse_lsn(primary_conn->exec(f.primary_writable ? kPrimaryLsnSql : "SELECT '0/0'").get(0, 0));
                if (lsn && received) f.lag = *lsn > *received ? *lsn - *received : 0;
                f.primary_daemon_age = meta.seconds_since_seen(primary->id);
                f.candidate_daemon_age = meta.seconds_since_monitored(cfg.node);
                if (f.schema_version >= 3)
                    if (auto req = meta.latest_switchover(); req && req->active()) f.active = req;
                f.pause = meta.failover_pause().value_or(FailoverPause{});
            } catch (const Error& e) {
                f.primary_error = e.what();
            }
        }
        std::vector<SwitchoverCheck> checks = judge_switchover(f);
        bool all_hold = true;
        for (const auto& c : checks) all_hold = all_hold && c.ok;

        Result r;
        Table table{{"check", "result", "found"}, {}};
        nlohmann::json jchecks = nlohmann::json::array();
        for (const auto& c : checks) {
            table.rows.push_back({c.name, c.ok ? "ok" : "FAILED", c.detail});
            jchecks.push_back({{"check", c.name}, {"ok", c.ok}, {"found", c.detail}});
        }
        r.data["checks"] = jchecks;
        std::string p = f.primary ? id(*f.primary) : "?";
        if (!all_hold || dry_run_) {
            r.table = table;
            if (dry_run_) r.lines = plan(p, cfg);
            r.data["plan"] = plan(p, cfg);
            r.exit_code = all_hold ? ExitCode::Success : ExitCode::BadConfig;
            std::string failed;
            for (const auto& c : checks)
                if (!c.ok && failed.empty()) failed = c.name + ": " + c.detail;
            r.summary = all_hold ? "standby switchover --dry-run: every check holds; node " + id(cfg.node) +
                                       " would take over from node " + p
                                 : "standby switchover refused: " + failed;
            return r;
        }

        // 2. The request, on the primary; its daemon takes it from here.
        Metadata meta(*primary_conn, cfg.cluster, timeouts::kProbeQuery);
        meta.commit_locally();
        auto request = meta.request_switchover(*f.primary, cfg.node, std::chrono::seconds(wait_s_));
        if (!request) {
            r.table = table;
            r.exit_code = ExitCode::BadConfig;
            r.summary = "standby switchover refused: another switchover started meanwhile";
            return r;
        }
        log::notice("switchover requested (request " + std::to_string(request->id) + "): node " + p +
                    "'s repmgrd stops it and promotes node " + id(cfg.node));
        primary_conn.reset();
        const Node old = *primary;

        // 3. Until this node is promoted, or the primary's daemon reports that it aborted.
        auto deadline = started_ + std::chrono::seconds(wait_s_);
        std::string outcome = await_promotion(cfg, old, request->id, deadline);
        if (!outcome.empty()) {
            r.exit_code = ExitCode::NoRestart;
            r.summary = "standby switchover: " + outcome;
            r.data["nodes"] = node_states(nodes);
            for (const auto& n : r.data["nodes"])
                r.lines.push_back("node " + id(n["id"].get<int>()) + ": " + n["state"].get<std::string>());
            return r;
        }
        double promoted_s = elapsed();
        log::notice("node " + id(cfg.node) + " is the primary after " + seconds(promoted_s));

        // 4. The metadata, now writable here: this node the primary, the old one its
        // standby, every standby of the old one expected to follow this node.
        Connection here = Connection::open(cfg.conninfo);
        Metadata new_meta(here, cfg.cluster);
        new_meta.commit_locally();  // the old primary, named there, streams only later
        Node self = node_from_config(cfg, "primary", std::nullopt);
        for (const auto& n : nodes)
            if (n.id == cfg.node && self.data_directory.empty()) self.data_directory = n.data_directory;
        record_event(cfg, nullptr, new_meta.record_promotion(self, "promoted by standby switchover from node " + id(old.id)).event);
        Node demoted = old;  // marked inactive as a former primary: it is this node's standby
        demoted.type = "standby";
        demoted.upstream_node_id = cfg.node;
        demoted.active = true;
        new_meta.save_node(demoted);

        // 5. The old primary streams from this node and replays a write made here.
        WalPosition pos = query_wal_position(here);
        record_event(cfg, &new_meta,
                     {cfg.node, "standby_switchover", true,
                      "node " + id(cfg.node) + " promoted on timeline " + std::to_string(pos.timeline) + ", node " +
                          id(old.id) + " demoted to its standby",
                      old.id});
        std::string written = here.exec(kPrimaryLsnSql).get(0, 0);
        std::string old_state = await_replay(old, written, deadline);
        double old_streams_s = elapsed();

        // 6. The other standbys, followed by their daemons.
        std::vector<std::string> behind;
        for (const auto& n : nodes) {
            if (n.id == cfg.node || n.id == old.id || !n.active || n.type != "standby") continue;
            if (!await_streaming(n, cfg, deadline)) behind.push_back(id(n.id));
        }
        double all_stream_s = elapsed();
        new_meta.move_switchover(request->id, "demoting", old_state.empty() ? "done" : "failed",
                                 old_state.empty() ? "" : old_state);

        r.data["request_id"] = request->id;
        r.data["primary"] = cfg.node;
        r.data["old_primary"] = old.id;
        r.data["timeline"] = pos.timeline;
        r.data["promoted_after_s"] = promoted_s;
        r.data["old_primary_streams_after_s"] = old_streams_s;
        r.data["all_streaming_after_s"] = all_stream_s;
        r.data["not_streaming"] = behind;
        r.lines.push_back("node " + id(cfg.node) + " promoted after " + seconds(promoted_s));
        if (!old_state.empty()) {
            r.exit_code = ExitCode::NoRestart;
            r.summary = "standby switchover: node " + id(cfg.node) + " is the primary, but " + old_state;
            return r;
        }
        r.lines.push_back("node " + id(old.id) + " replays from it after " + seconds(old_streams_s));
        if (!behind.empty())
            log::warning("not streaming from node " + id(cfg.node) + " within --wait: node(s) " + join(behind));
        r.summary = "standby switchover: node " + id(cfg.node) + " (\"" + cfg.node_name + "\") is the primary, node " +
                    id(old.id) + " its standby" +
                    (behind.empty() ? ", every standby streams from it (" + seconds(all_stream_s) + ")"
                                    : "; not yet streaming from it: node(s) " + join(behind));
        return r;
    }

private:
    bool dry_run_ = false;
    int wait_s_ = static_cast<int>(timeouts::kSwitchover.count());
    Clock::time_point started_;

    double elapsed() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }

    static std::string join(const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
        return s;
    }

    std::vector<std::string> plan(const std::string& p, const Config& cfg) const {
        std::string c = id(cfg.node);
        return {"1. insert a switchover request on node " + p + " and notify its repmgrd",
                "2. node " + p + "'s repmgrd checkpoints it, writes still accepted, then stops it cleanly "
                "(a fast shutdown with its service_stop_command, else pg_ctlcluster or pg_ctl; both within "
                "shutdown_check_timeout)",
                "3. it checks that node " + c + " replayed the shutdown checkpoint",
                "4. it writes node " + p + "'s standby settings (primary_conninfo to node " + c + ")",
                "5. it promotes node " + c + " and starts node " + p + " as its standby",
                "6. this command records the new roles and proves node " + p + " replays a write from node " + c,
                "7. the other standbys' daemons follow node " + c,
                "on any failure before step 5: node " + p + " starts again as the primary"};
    }

    // Empty when this node left recovery; else what happened instead.
    std::string await_promotion(const Config& cfg, const Node& old, long long request_id, Clock::time_point deadline) {
        auto next_look = Clock::now();
        std::optional<Connection> local;
        while (Clock::now() < deadline) {
            try {
                if (!local || !local->ok())
                    local.emplace(Connection::open(cfg.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect}));
                if (!query_in_recovery(*local, timeouts::kProbeQuery)) return "";
            } catch (const Error& e) {
                local.reset();
                log::info(std::string("this node: ") + e.what());
            }
            // The old primary's word: it records an abort once it runs as the primary again.
            if (Clock::now() >= next_look) {
                next_look = Clock::now() + 200ms;
                try {
                    Connection c = Connection::open(old.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
                    auto req = Metadata(c, cfg.cluster, timeouts::kProbeQuery).switchover(request_id);
                    if (req && (req->state == "aborted" || req->state == "failed"))
                        return "aborted by node " + id(old.id) + "'s repmgrd: " + req->detail;
                } catch (const Error&) {
                    // stopping, stopped, or a standby starting: ask again
                }
            }
            std::this_thread::sleep_for(10ms);
        }
        return "node " + id(cfg.node) + " was not promoted within --wait (" + std::to_string(wait_s_) +
               " s); the request stays until node " + id(old.id) + "'s repmgrd ends it";
    }

    // Empty when the old primary, as a standby, replayed up to lsn; else its state.
    std::string await_replay(const Node& old, const std::string& lsn, Clock::time_point deadline) {
        std::string last = "not reached";
        do {
            try {
                Connection c = Connection::open(old.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
                Rows r = c.exec(kReplayedSql, {lsn}, timeouts::kProbeQuery);
                if (!r.get_bool(0, 0)) return "node " + id(old.id) + " accepts writes";
                if (r.get_bool(0, 1)) return "";
                last = "a standby, not yet at " + lsn;
            } catch (const Error& e) {
                last = e.what();
            }
            std::this_thread::sleep_for(20ms);
        } while (Clock::now() < deadline);
        return "node " + id(old.id) + " did not replay this node's write within --wait (" + last + ")";
    }

    static bool await_streaming(const Node& n, const Config& cfg, Clock::time_point deadline) {
        auto mine = endpoints_of(parse_conninfo(cfg.conninfo));
        do {
            try {
                Connection c = Connection::open(n.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
                Rows r = c.exec(kReceiverSql, {}, timeouts::kProbeQuery);
                if (!r.empty() && same_server(std::vector<Endpoint>{{r.get(0, 0), r.get(0, 1)}}, mine)) return true;
            } catch (const Error&) {
            }
            std::this_thread::sleep_for(50ms);
        } while (Clock::now() < deadline);
        return false;
    }

    // After an abort: what each registered node is now.
    static nlohmann::json node_states(const std::vector<Node>& nodes) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& n : nodes) {
            std::string state;
            try {
                Connection c = Connection::open(n.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
                state = query_in_recovery(c, timeouts::kProbeQuery) ? "standby" : "primary (accepts writes)";
            } catch (const Error& e) {
                state = std::string("not answering: ") + e.what();
            }
            out.push_back({{"id", n.id}, {"state", state}});
        }
        return out;
    }
};

}  // namespace

void register_standby_switchover(Registry& registry) {
    registry.add(std::make_unique<StandbySwitchover>());
}

}  // namespace pgrm
