// standby follow [node]: re-points this standby at the current primary, after checking
// that the timelines let it follow; proves it by waiting until it replays a change
// written on the primary after the switch.
#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/log.hpp"
#include "core/metadata.hpp"
#include "core/node_identity.hpp"
#include "core/primary.hpp"
#include "core/recovery.hpp"
#include "core/server.hpp"
#include "core/timeouts.hpp"
#include "core/timeline.hpp"
#include "plugins/standby/standby.hpp"

namespace pgrm {

namespace {

const char* const kReloadSql = "SELECT pg_reload_conf()";
const char* const kReceiverSql =
    "SELECT status, sender_host, sender_port FROM pg_catalog.pg_stat_wal_receiver";
const char* const kReplayedSql = "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn";
const char* const kPrimaryLsnSql = "SELECT pg_current_wal_lsn()::text";
// Where replay stands, and whether the startup process waits for more WAL: then it has
// replayed every complete record this node holds.
const char* const kReplaySettledSql =
    "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text, "
    "       EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'startup' AND wait_event IN "
    "               ('RecoveryWalStream', 'RecoveryWalAll', 'RecoveryRetrieveRetryInterval'))";

class StandbyFollow : public Command {
public:
    Spec spec() const override {
        return {"standby", "follow", "[node]", "allows the standby to re-point itself to a new master",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    void declare(CLI::App& app) override {
        app.add_option("node", node_, "host of the new primary (default: found from the metadata)");
        app.add_option("--wait", wait_s_, "seconds to wait for streaming from the new primary (default 60)")
            ->check(CLI::Range(1, 3600));
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();

        // 1. This node must be a running standby.
        Connection local = Connection::open(cfg.conninfo);
        const ServerFacts self = query_server_facts(local);
        if (!self.in_recovery)
            throw Error(ExitCode::BadConfig,
                        "node " + std::to_string(cfg.node) + " is a primary, not a standby", "",
                        "to turn a former primary into a standby, rejoin it: stop it and run "
                        "\"repmgr node rejoin <new primary>\"");
        // 2. The new primary: the given host, else the one writable registered node.
        Metadata local_meta(local, cfg.cluster);
        std::vector<Node> nodes = local_meta.installed() ? local_meta.nodes() : std::vector<Node>{};
        auto [primary_ci, primary_id] = find_primary(ctx, nodes);
        Connection primary = Connection::open(primary_ci);
        ServerFacts pf = query_server_facts(primary);
        if (pf.in_recovery)
            throw Error(ExitCode::BadConfig, "\"" + primary_ci.redacted() + "\" is not a primary (it is in recovery)");
        if (pf.system_identifier != self.system_identifier)
            throw Error(ExitCode::BadConfig, "\"" + primary_ci.redacted() + "\" is another database system",
                        "system identifiers differ: " + self.system_identifier + " and " + pf.system_identifier);

        // 3. The timelines must let this node follow.
        WalPosition mine = query_wal_position(local);
        WalPosition theirs = query_wal_position(primary);
        auto history = parse_timeline_history(timeline_history(primary, primary_ci, theirs.timeline));
        auto primary_lsn = parse_lsn(theirs.lsn).value_or(0);
        FollowVerdict verdict = can_follow(mine.timeline, parse_lsn(mine.lsn).value_or(0), theirs.timeline,
                                           primary_lsn, history);
        // WAL received past the fork that replay cannot reach is the start of a record
        // the old primary never finished sending; the new timeline replaces it. Only
        // replayed WAL past the fork makes this node diverge.
        if (!verdict.ok) {
            if (auto replayed = settled_replay_lsn(local)) {
                FollowVerdict by_replay = can_follow(mine.timeline, *replayed, theirs.timeline, primary_lsn, history);
                if (by_replay.ok) {
                    log::info("WAL received past the fork ends in an incomplete record, replayed up to " +
                              format_lsn(*replayed) + ": following");
                    verdict = by_replay;
                }
            }
        }
        if (!verdict.ok)
            throw Error(ExitCode::BadConfig, "node " + std::to_string(cfg.node) + " cannot follow the new primary",
                        verdict.reason,
                        "stop it and rejoin it with \"repmgr node rejoin " +
                            primary_ci.get("host").value_or("<host>") + "\" (pg_rewind)");

        // 4. Point primary_conninfo at it; PostgreSQL 13+ applies that on reload.
        std::string data_dir = !cfg.data_directory.empty() ? cfg.data_directory : self.data_directory;
        if (data_dir.empty())
            throw Error(ExitCode::BadConfig, "the data directory of node " + std::to_string(cfg.node) + " is unknown",
                        "", "set data_directory in repmgr.conf");
        set_auto_conf(data_dir, "primary_conninfo", primary_conninfo_for(primary_ci, cfg.node_name));
        const bool applies_on_reload = self.version_num >= 130000;
        if (applies_on_reload && !cfg.service_reload_command.empty()) {
            // A service manager that tracks reloads makes it (service_reload_command).
            ExecResult res = LocalServer(data_dir, &cfg).reload();
            if (!res.ok())
                throw Error(ExitCode::NoRestart, "could not reload node " + std::to_string(cfg.node), res.err,
                            "reload it with \"" + server_control_hint(&cfg, data_dir, "reload") + "\"");
        } else if (applies_on_reload) {
            local.exec(kReloadSql);
        } else {
            ExecResult res = LocalServer(data_dir, &cfg).restart();
            if (!res.ok()) throw Error(ExitCode::NoRestart, "could not restart node " + std::to_string(cfg.node), res.err);
            local = Connection::open(cfg.conninfo);
        }

        // 5. Metadata and event on the primary, then proof: this node replays that write.
        Metadata meta(primary, cfg.cluster);
        if (meta.installed() && primary_id) {
            meta.commit_locally();
            meta.save_node(node_from_config(cfg, "standby", primary_id));
            record_event(cfg, &meta,
                         {cfg.node, "standby_follow", true, "now follows node " + std::to_string(*primary_id), primary_id});
        }
        std::string target_lsn = primary.exec(kPrimaryLsnSql).get(0, 0);
        // The old upstream may still send WAL between the check above and the switch (a
        // frozen primary that thaws): replay then stops past the fork, and waiting is vain.
        auto past_fork = [&](std::uint64_t replayed) {
            return can_follow(mine.timeline, replayed, theirs.timeline, primary_lsn, history);
        };
        wait_for_streaming(local, primary_ci, target_lsn, past_fork);

        Result r;
        r.summary = "standby follow: node " + std::to_string(cfg.node) + " now streams from " +
                    (primary_id ? "node " + std::to_string(*primary_id) : primary_ci.redacted()) +
                    " (timeline " + std::to_string(theirs.timeline) + ")";
        r.data = {{"node_id", cfg.node},
                  {"primary_node_id", primary_id ? nlohmann::json(*primary_id) : nullptr},
                  {"primary", primary_ci.redacted()},
                  {"timeline", theirs.timeline},
                  {"replayed_lsn", target_lsn}};
        return r;
    }

private:
    std::string node_;
    int wait_s_ = static_cast<int>(timeouts::kServerControl.count());

    // The given host (with -p, -U, -d or this node's own user and database), else the
    // only registered node that accepts writes.
    std::pair<Conninfo, std::optional<int>> find_primary(const Context& ctx, const std::vector<Node>& nodes) const {
        const GlobalOptions& o = ctx.options;
        std::string host = node_.empty() ? o.host : node_;
        if (!host.empty()) {
            Conninfo ci = parse_conninfo(ctx.cfg().conninfo);
            ci.set("host", host);
            ci.erase("hostaddr");
            if (!o.port.empty()) ci.set("port", o.port); else ci.erase("port");
            if (!o.username.empty()) ci.set("user", o.username);
            if (!o.dbname.empty()) ci.set("dbname", o.dbname);
            return {ci, node_at(nodes, Endpoint{host, ci.get("port").value_or("")})};
        }
        std::vector<Node> others;
        for (const auto& n : nodes)
            if (n.id != ctx.cfg().node) others.push_back(n);
        std::vector<std::optional<bool>> in_recovery =
            in_recovery_each(others, "it may be the primary: let this node in (pg_hba.conf, ~/.pgpass, "
                                     "max_connections), or name the primary to follow: standby follow <host>");
        std::vector<const Node*> writable;
        for (size_t i = 0; i < others.size(); ++i)
            if (in_recovery[i] == false) writable.push_back(&others[i]);
        if (writable.empty())
            throw Error(ExitCode::BadConfig, "no registered node accepts writes", "",
                        "promote a standby first, or name the new primary: standby follow <host>");
        if (writable.size() > 1) {
            std::string names;
            for (const Node* n : writable) names += (names.empty() ? "" : ", ") + n->name;
            throw Error(ExitCode::BadConfig, "more than one registered node accepts writes: " + names, "",
                        "name the primary to follow: standby follow <host>");
        }
        return {parse_conninfo(writable.front()->conninfo), writable.front()->id};
    }

    // The replay position once the startup process waits for WAL it does not have, with
    // nothing new received meanwhile; nullopt if replay is still moving after a few seconds.
    static std::optional<std::uint64_t> settled_replay_lsn(Connection& local) {
        auto until = std::chrono::steady_clock::now() + timeouts::kReplaySettle;
        std::optional<std::pair<std::string, std::string>> previous;
        while (std::chrono::steady_clock::now() < until) {
            Rows r = local.exec(kReplaySettledSql);
            std::pair<std::string, std::string> now{r.get(0, 0), r.get(0, 1)};
            if (r.get_bool(0, 2) && previous == now) return parse_lsn(now.first);
            previous = r.get_bool(0, 2) ? std::optional(now) : std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        log::info("replay did not settle within 3 s (or this role cannot see the startup process's "
                  "wait: it needs pg_read_all_stats); judging by received WAL");
        return std::nullopt;
    }

    // Until this node streams from primary and replayed lsn. Replay that settled (the
    // startup process waits for WAL, nothing new received) while not streaming from it,
    // at a point `verdict` says is past the fork, will not go on: that fails at once.
    template <typename Verdict>
    void wait_for_streaming(Connection& local, const Conninfo& primary, const std::string& lsn,
                            const Verdict& verdict) const {
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s_);
        std::string last_status = "no WAL receiver";
        std::optional<std::pair<std::string, std::string>> settled;  // replayed, received
        while (std::chrono::steady_clock::now() < until) {
            Rows r = local.exec(kReceiverSql);
            if (!r.empty()) last_status = r.get(0, 0);
            bool streaming = !r.empty() && r.get(0, 0) == "streaming" &&
                             same_server({Endpoint{r.get(0, 1), r.get(0, 2)}}, endpoints_of(primary));
            if (streaming && local.exec(kReplayedSql, {lsn}).get_bool(0, 0)) return;
            Rows at = local.exec(kReplaySettledSql);
            std::pair<std::string, std::string> now{at.get(0, 0), at.get(0, 1)};
            if (!streaming && at.get_bool(0, 2) && settled == now) {
                FollowVerdict v = verdict(parse_lsn(now.first).value_or(0));
                if (!v.ok)
                    throw Error(ExitCode::BadConfig,
                                "this node cannot follow the new primary: its old upstream sent WAL past the fork "
                                "while it switched, and replay stopped there",
                                v.reason, "stop it and rejoin it with \"repmgr node rejoin " +
                                              primary.get("host").value_or("<host>") + "\" (pg_rewind)");
            }
            settled = at.get_bool(0, 2) && !streaming ? std::optional(now) : std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        throw Error(ExitCode::NoRestart,
                    "the standby did not stream from the new primary within " + std::to_string(wait_s_) + " s",
                    "WAL receiver: " + last_status, "look at the standby's server log");
    }
};

}  // namespace

void register_standby_follow(Registry& registry) {
    registry.add(std::make_unique<StandbyFollow>());
}

}  // namespace pgrm
