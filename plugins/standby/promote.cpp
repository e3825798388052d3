// standby promote: makes this standby the primary, after making sure the registered
// primary is not still taking writes; then moves the metadata with the roles.
#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/log.hpp"
#include "core/metadata.hpp"
#include "core/primary.hpp"
#include "core/server.hpp"
#include "core/timeouts.hpp"
#include "plugins/standby/standby.hpp"

namespace pgrm {

namespace {

// Without waiting: pg_promote(true) checks only every 100 ms; this command polls faster.
const char* const kPromoteSql = "SELECT pg_promote(false)";
const char* const kInRecoverySql = "SELECT pg_is_in_recovery()";
const char* const kStreamingSql =
    "SELECT sender_host, sender_port FROM pg_catalog.pg_stat_wal_receiver WHERE status = 'streaming'";
// So that a rewind of the old primary sees the new timeline in this node's control file.
const char* const kCheckpointSql = "CHECKPOINT";

class StandbyPromote : public Command {
public:
    Spec spec() const override {
        return {"standby", "promote", "",
                "allows manual promotion of a specific standby into a new master in the event of a failover",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    void declare(CLI::App& app) override {
        app.add_option("--wait", wait_s_, "seconds to wait for the promoted server to accept writes (default 60)")
            ->check(CLI::Range(1, 3600));
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();

        // 1. This node must be a standby.
        Connection local = Connection::open(cfg.conninfo);
        if (!query_server_facts(local).in_recovery)
            throw Error(ExitCode::BadConfig,
                        "node " + std::to_string(cfg.node) + " is not a standby: it already accepts writes");

        // 2. No other primary may still be alive: two writable primaries lose data.
        Metadata local_meta(local, cfg.cluster);
        std::vector<Node> nodes = local_meta.installed() ? local_meta.nodes() : std::vector<Node>{};
        if (!ctx.options.force) refuse_if_primary_alive(local, nodes, cfg.node);

        // 3. Promote, and wait until it accepts writes.
        promote(local, cfg);
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s_);
        while (local.exec(kInRecoverySql).get_bool(0, 0)) {
            if (std::chrono::steady_clock::now() > until)
                throw Error(ExitCode::NoRestart,
                            "node " + std::to_string(cfg.node) + " did not leave recovery within " +
                                std::to_string(wait_s_) + " s");
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        local.exec(kCheckpointSql);
        WalPosition pos = query_wal_position(local);
        log::notice("node " + std::to_string(cfg.node) + " promoted: timeline " +
                    std::to_string(pos.timeline) + " at " + pos.lsn);

        // 4. The metadata, now writable here, in one transaction: this node is the
        // primary, the old one is inactive, and its standbys are expected to follow this node.
        Node self = node_from_config(cfg, "primary", std::nullopt);
        std::optional<int> old_primary;
        try {
            Metadata meta(local, cfg.cluster);
            meta.commit_locally();
            meta.install_or_upgrade();
            Metadata::Promotion p =
                meta.record_promotion(self, "promoted to primary on timeline " + std::to_string(pos.timeline));
            old_primary = p.event.related_node_id;
            record_event(cfg, nullptr, p.event);  // its row went with the promotion's
        } catch (const Error& e) {
            throw Error(e.code(),
                        "node " + std::to_string(cfg.node) + " is the primary now, but the metadata was left "
                        "unchanged: " + e.what(),
                        e.detail(), "fix the cause, then record it with \"repmgr master register --force\" here");
        }

        Result r;
        r.summary = "standby promote: node " + std::to_string(cfg.node) + " (\"" + cfg.node_name +
                    "\") is now the primary (timeline " + std::to_string(pos.timeline) + ")";
        r.data = {{"node", to_json(self)}, {"timeline", pos.timeline}, {"lsn", pos.lsn},
                  {"old_primary_node_id", old_primary ? nlohmann::json(*old_primary) : nullptr}};
        return r;
    }

private:
    int wait_s_ = static_cast<int>(timeouts::kServerControl.count());

    static void refuse_if_primary_alive(Connection& local, const std::vector<Node>& nodes, int self) {
        Rows streaming = local.exec(kStreamingSql);
        if (!streaming.empty())
            throw Error(ExitCode::BadConfig,
                        "this standby still streams from its primary (" + streaming.get(0, 0) + ":" +
                            streaming.get(0, 1) + ")",
                        "", "a primary that still sends WAL is alive: stop it first, or use --force");
        std::vector<Node> others;
        for (const auto& n : nodes)
            if (n.id != self && n.active) others.push_back(n);
        // Not accepts_writes(): a fenced primary (read-only by configuration) still takes
        // the writes a client asks for, so only --force promotes past it.
        std::vector<std::optional<bool>> in_recovery =
            in_recovery_each(others, "it may still accept writes: let this node in (pg_hba.conf, ~/.pgpass, "
                                     "max_connections) and try again, or stop it; --force promotes anyway");
        for (size_t i = 0; i < others.size(); ++i)
            if (in_recovery[i] == false)
                throw Error(ExitCode::BadConfig,
                            "node " + std::to_string(others[i].id) + " (\"" + others[i].name +
                                "\") is running and accepts writes",
                            "", "stop it first, or use --force if it will never take writes again");
    }

    void promote(Connection& local, const Config& cfg) const {
        try {
            if (local.exec(kPromoteSql).get_bool(0, 0)) return;
            throw Error(ExitCode::NoRestart, "pg_promote() could not signal the postmaster");
        } catch (const Error& e) {
            if (cfg.data_directory.empty()) throw;
            log::warning(std::string("pg_promote() failed, trying pg_ctl promote: ") + e.what());
        }
        ExecResult res = LocalServer(cfg.data_directory, &cfg).promote(wait_s_);
        if (!res.ok())
            throw Error(ExitCode::NoRestart, "pg_ctl promote failed", res.err);
    }
};

}  // namespace

void register_standby_promote(Registry& registry) {
    registry.add(std::make_unique<StandbyPromote>());
}

}  // namespace pgrm
