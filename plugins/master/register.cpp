// master register (alias primary register): records this primary in the cluster's
// metadata, creating or upgrading the schema repmgr_<cluster> first.
#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/log.hpp"
#include "core/metadata.hpp"
#include "core/server.hpp"
#include "plugins/master/master.hpp"

namespace pgrm {

namespace {

class MasterRegister : public Command {
public:
    Spec spec() const override {
        return {"master", "register", "", "registers the master in a cluster",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {"primary"}};
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();

        // 1. The local server must be a writable primary of a supported version.
        Connection conn = Connection::open(cfg.conninfo);
        ServerFacts facts = query_server_facts(conn);
        if (facts.version_num < 120000)
            throw Error(ExitCode::BadConfig,
                        "PostgreSQL " + std::to_string(facts.version_num / 10000) +
                            " is not supported; pgrm needs 12 or later");
        if (facts.in_recovery)
            throw Error(ExitCode::BadConfig, "node " + std::to_string(cfg.node) +
                                                 " is a standby; master register needs a primary",
                        "", "register it with \"repmgr standby register\"");

        // 2. The schema exists at the newest version.
        Metadata meta(conn, cfg.cluster);
        meta.commit_locally();
        int version = meta.install_or_upgrade();

        // 3. One active primary: refuse to shadow another one unless forced.
        auto existing = meta.node(cfg.node);
        if (existing && !ctx.options.force)
            throw Error(ExitCode::BadConfig,
                        "node " + std::to_string(cfg.node) + " is already registered",
                        "", "use --force to update its record");
        auto primary = meta.active_primary();
        if (primary && primary->id != cfg.node) {
            if (!ctx.options.force)
                throw Error(ExitCode::BadConfig,
                            "node " + std::to_string(primary->id) + " (\"" + primary->name +
                                "\") is registered as the active primary",
                            "", "use --force to record this node as the primary instead");
            meta.deactivate_other_primaries(cfg.node);
        }
        warn_without_rewind_support(conn);

        // 4. The record, and an event.
        Node node = node_from_config(cfg, "primary", std::nullopt, facts.data_directory);
        meta.save_node(node);
        std::string what = existing ? "updated" : "registered";
        record_event(cfg, &meta, {node.id, "primary_register", true, "primary " + what + " in cluster \"" + cfg.cluster + "\""});
        log::info("node " + std::to_string(node.id) + " " + what + " as primary");

        Result r;
        r.summary = "master register: node " + std::to_string(node.id) + " (\"" + node.name +
                    "\") " + what + " as primary of cluster \"" + cfg.cluster + "\"";
        r.data = {{"cluster", cfg.cluster},
                  {"schema", meta.schema()},
                  {"schema_version", version},
                  {"node", to_json(node)},
                  {"updated", existing.has_value()}};
        return r;
    }

private:
    // pg_rewind, which rejoins a failed primary cheaply, needs one of these.
    static void warn_without_rewind_support(Connection& conn) {
        if (show_setting(conn, "wal_log_hints") == "off" &&
            show_setting(conn, "data_checksums") == "off")
            log::warning("neither wal_log_hints nor data_checksums is on: a failed primary "
                         "cannot be rejoined with pg_rewind, only re-cloned");
    }
};

}  // namespace

void register_master_register(Registry& registry) { registry.add(std::make_unique<MasterRegister>()); }

}  // namespace pgrm
