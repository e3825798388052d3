#include "core/unregister.hpp"

#include "core/event.hpp"
#include "core/log.hpp"
#include "core/primary.hpp"

namespace pgrm {

std::optional<Error> unregister_refusal(const UnregisterSituation& s) {
    std::string node = "node " + std::to_string(s.node_id);
    auto refuse = [](std::string message, std::string hint) {
        return Error(ExitCode::BadConfig, std::move(message), "", std::move(hint));
    };
    if (!s.target)
        return refuse(node + " is not registered", "\"repmgr cluster show\" lists the registered nodes");
    node += " (\"" + s.target->name + "\")";
    if (s.type == "standby" && s.target->type != "standby")
        return refuse(node + " is a primary, not a standby",
                      "an inactive former primary is unregistered with \"repmgr master unregister\"");
    if (s.type == "primary" && s.target->type != "primary")
        return refuse(node + " is a standby, not a primary",
                      "a standby is unregistered with \"repmgr standby unregister\"");
    if (s.type == "primary" && s.target->id == s.primary_id)
        return refuse(node + " is the current primary",
                      "only an inactive former primary can be unregistered");
    if (s.type == "primary" && s.target->active)
        return refuse(node + " is registered as an active primary",
                      "only an inactive former primary can be unregistered");
    if (s.target_writable.value_or(false))
        return refuse(node + " is running and accepts writes",
                      "stop it first: only a node that takes no writes can be unregistered");
    return std::nullopt;
}

Unregistered unregister_node(const Config& cfg, const std::string& type, int node_id, const std::string& event) {
    // 1. The primary, from this node's metadata; its own metadata is the one that counts.
    Connection local = Connection::open(cfg.conninfo);
    PrimaryLink primary = connect_primary(local, cfg.cluster);
    Metadata meta(primary.conn, cfg.cluster);
    meta.commit_locally();

    // 2. Whether the node may go.
    UnregisterSituation s;
    s.type = type;
    s.node_id = node_id;
    s.target = meta.node(node_id);
    s.primary_id = meta.active_primary().value_or(primary.node).id;
    if (s.target)
        s.target_writable = accepts_writes(*s.target, "it may still accept writes: let this command in "
                                                      "(pg_hba.conf, ~/.pgpass, max_connections), or stop it");
    if (auto refusal = unregister_refusal(s)) throw *refusal;

    // 3. Its record removed, with an event, unless it changed since step 2.
    std::string details = type + " unregistered (from node " + std::to_string(cfg.node) + ")";
    if (!meta.remove_node(*s.target, event, details))
        throw Error(ExitCode::BadConfig,
                    "the record of node " + std::to_string(node_id) + " changed while it was being unregistered",
                    "nothing was changed", "run the command again");
    record_event(cfg, nullptr, {node_id, event, true, details});  // its row went with the removal

    Unregistered out{*s.target, primary.node, {}};
    for (const Node& n : meta.nodes())
        if (n.upstream_node_id == node_id) out.downstream.push_back(n);
    for (const Node& n : out.downstream)
        log::warning("node " + std::to_string(n.id) + " (\"" + n.name + "\") still names node " +
                     std::to_string(node_id) + " as its upstream");
    return out;
}

}  // namespace pgrm
