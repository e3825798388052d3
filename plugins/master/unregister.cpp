// master unregister (alias primary unregister): removes an inactive former primary's
// record from the cluster's metadata on the current primary: this node's, or with
// --node-id another's (one that is gone for good). Never the current primary.
#include <limits>

#include <CLI/CLI.hpp>

#include "core/unregister.hpp"
#include "plugins/master/master.hpp"

namespace pgrm {

namespace {

class MasterUnregister : public Command {
public:
    Spec spec() const override {
        return {"master", "unregister", "", "removes an inactive former master from the cluster's metadata",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {"primary"}};
    }

    void declare(CLI::App& app) override {
        app.add_option("--node-id", node_id_, "the former primary to unregister (default: this node)")
            ->check(CLI::Range(1, std::numeric_limits<int>::max()));
    }

    // On the primary this node's metadata names: refuse unless the node is an inactive
    // former primary that takes no writes, then remove its record and record
    // primary_unregister.
    Result run(Context& ctx) override {
        Unregistered u = unregister_node(ctx.cfg(), "primary", node_id_.value_or(ctx.cfg().node),
                                         "primary_unregister");
        Result r;
        r.summary = "master unregister: former primary node " + std::to_string(u.node.id) + " (\"" +
                    u.node.name + "\") removed from the metadata of cluster \"" + ctx.cfg().cluster + "\"";
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

void register_master_unregister(Registry& registry) {
    registry.add(std::make_unique<MasterUnregister>());
}

}  // namespace pgrm
