// standby register: records this running standby in the cluster's metadata on the
// primary, with the upstream it streams from.
#include "plugins/standby/standby.hpp"

#include <thread>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/log.hpp"
#include "core/metadata.hpp"
#include "core/node_identity.hpp"
#include "core/server.hpp"

namespace pgrm {

namespace {

// Where this standby's WAL receiver is connected, if it streams.
const char* const kWalSenderSql =
    "SELECT sender_host, sender_port FROM pg_catalog.pg_stat_wal_receiver "
    "WHERE status = 'streaming'";
// What a standby streaming from this server can have now: a primary's WAL position, a
// cascading standby's furthest received or replayed.
const char* const kUpstreamLsnSql =
    "SELECT CASE WHEN pg_is_in_recovery() "
    "            THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) "
    "            ELSE pg_current_wal_lsn() END::text";
const char* const kReplayedSql = "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn";

class StandbyRegister : public Command {
public:
    Spec spec() const override {
        return {"standby", "register", "", "registers a standby in a cluster",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();

        // 1. The local server must be a standby.
        Connection local = Connection::open(cfg.conninfo);
        ServerFacts facts = query_server_facts(local);
        if (!facts.in_recovery)
            throw Error(ExitCode::BadConfig,
                        "node " + std::to_string(cfg.node) + " is not a standby (it accepts writes)",
                        "", "register a primary with \"repmgr master register\"");

        // 2. Replay caught up with the upstream, so that what "master register" has just
        //    written there is here too: a script may run the two commands in a row.
        catch_up_with_upstream(local, cfg);

        // 3. The primary, from the metadata this standby replicated from it.
        Metadata local_meta(local, cfg.cluster);
        if (!local_meta.installed())
            throw Error(ExitCode::BadConfig,
                        "cluster \"" + cfg.cluster + "\" has no registered primary",
                        "no schema " + local_meta.schema() + " on this standby",
                        "run \"repmgr master register\" on the primary first");
        auto primary_node = local_meta.active_primary();
        if (!primary_node)
            throw Error(ExitCode::BadConfig,
                        "cluster \"" + cfg.cluster + "\" has no active primary registered", "",
                        "run \"repmgr master register\" on the primary first");

        // 4. It must be reachable, writable, and the same database system.
        Connection primary = Connection::open(primary_node->conninfo);
        ServerFacts primary_facts = query_server_facts(primary);
        if (primary_facts.in_recovery)
            throw Error(ExitCode::BadConfig, "registered primary node " +
                                                 std::to_string(primary_node->id) +
                                                 " is in recovery");
        if (primary_facts.system_identifier != facts.system_identifier)
            throw Error(ExitCode::BadConfig,
                        "node " + std::to_string(cfg.node) + " is not a standby of node " +
                            std::to_string(primary_node->id),
                        "system identifiers differ: " + facts.system_identifier + " and " +
                            primary_facts.system_identifier);

        // 5. Its upstream: the registered node it streams from, else the primary.
        Metadata meta(primary, cfg.cluster);
        meta.commit_locally();
        std::vector<Node> nodes = meta.nodes();
        int upstream = upstream_of(local, nodes).value_or(primary_node->id);

        auto existing = meta.node(cfg.node);
        if (existing && !ctx.options.force)
            throw Error(ExitCode::BadConfig,
                        "node " + std::to_string(cfg.node) + " is already registered", "",
                        "use --force to update its record");

        // 6. The record, and an event.
        Node node = node_from_config(cfg, "standby", upstream, facts.data_directory);
        meta.save_node(node);
        std::string what = existing ? "updated" : "registered";
        record_event(cfg, &meta,
                     {node.id, "standby_register", true, "standby " + what + " with upstream node " + std::to_string(upstream),
                      upstream});

        Result r;
        r.summary = "standby register: node " + std::to_string(node.id) + " (\"" + node.name +
                    "\") " + what + " as standby of node " + std::to_string(upstream);
        r.data = {{"cluster", cfg.cluster}, {"node", to_json(node)}, {"updated", existing.has_value()}};
        return r;
    }

private:
    // Waits, up to timeouts::kRegisterReplay, until this standby has replayed the WAL
    // its upstream has now. Without a streaming upstream there is nothing to wait for
    // (step 5 warns); when it times out, the metadata here may be behind, which steps 3
    // and 4 judge as before.
    static void catch_up_with_upstream(Connection& local, const Config& cfg) {
        Rows sender = local.exec(kWalSenderSql);
        if (sender.empty()) return;
        Conninfo upstream_ci = parse_conninfo(cfg.conninfo);
        upstream_ci.set("host", sender.get(0, 0));
        upstream_ci.erase("hostaddr");
        upstream_ci.set("port", sender.get(0, 1));
        std::string target;
        try {
            Connection upstream =
                Connection::open(upstream_ci, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
            target = upstream.exec(kUpstreamLsnSql, {}, timeouts::kProbeQuery).get(0, 0);
        } catch (const Error& e) {
            log::warning("could not ask the upstream \"" + upstream_ci.redacted() +
                         "\" for its WAL position, not waiting for replay: " + e.what());
            return;
        }
        auto until = std::chrono::steady_clock::now() + timeouts::kRegisterReplay;
        while (!local.exec(kReplayedSql, {target}).get_bool(0, 0)) {
            if (std::chrono::steady_clock::now() >= until) {
                log::warning("this standby has not replayed up to its upstream's WAL position " + target +
                             " within " + std::to_string(timeouts::kRegisterReplay.count()) +
                             " s; its metadata may be behind");
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        log::info("replayed up to the upstream's WAL position " + target);
    }

    static std::optional<int> upstream_of(Connection& local, const std::vector<Node>& nodes) {
        Rows r = local.exec(kWalSenderSql);
        if (r.empty()) {
            log::warning("this standby is not streaming; recording the primary as its upstream");
            return std::nullopt;
        }
        auto upstream = node_at(nodes, Endpoint{r.get(0, 0), r.get(0, 1)});
        if (!upstream)
            log::warning("this standby streams from " + r.get(0, 0) + " port " + r.get(0, 1) +
                         ", which is no registered node; recording the primary as its upstream");
        return upstream;
    }
};

}  // namespace

void register_standby_register(Registry& registry) {
    registry.add(std::make_unique<StandbyRegister>());
}

}  // namespace pgrm
