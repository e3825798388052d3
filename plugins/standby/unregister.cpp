// standby unregister: removes a standby's record from the cluster's metadata on the
// primary: this node's, or with --node-id another's (a standby that is gone for good).
#include <limits>

#include <CLI/CLI.hpp>

#include "core/unregister.hpp"
#include "plugins/standby/standby.hpp"

namespace pgrm {

namespace {

class StandbyUnregister : public Command {
public:
    Spec spec() const override {
        return {"standby", "unregister", "", "removes a standby from the cluster's metadata",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    void declare(CLI::App& app) override {
        app.add_option("--node-id", node_id_, "the standby to unregister (default: this node)")
            ->check(CLI::Range(1, std::numeric_limits<int>::max()));
    }

    // On the primary this node's metadata names: refuse unless the node is a registered
    // standby that takes no writes, then remove its record and record standby_unregister.
    Result run(Context& ctx) override {
        Unregistered u = unregister_node(ctx.cfg(), "standby", node_id_.value_or(ctx.cfg().node),
                                         "standby_unregister");
        Result r;
        r.summary = "standby unregister: node " + std::to_string(u.node.id) + " (\"" + u.node.name +
                    "\") removed from the metadata of cluster \"" + ctx.cfg().cluster + "\"";
        nlohmann::json downstream = nlohmann::json::array();
        for (const Node& n : u.downstream) downstream.push_back(n.id);
        r.data = {{"cluster", ctx.cfg().cluster},
                  {"node", to_json(u.node)},
                  {"primary_node_id", u.primary.id},
                  {"downstream_node_ids", std::move(downstream)}};
        return r;
    }

private:
    std::optional<int> node_id_;
};

}  // namespace

void register_standby_unregister(Registry& registry) {
    registry.add(std::make_unique<StandbyUnregister>());
}

}  // namespace pgrm
