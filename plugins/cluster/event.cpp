// cluster event: the newest events of the cluster's metadata, optionally of one node or
// of one kind, read from the local node (the metadata is replicated to standbys).
#include <limits>
#include <map>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/metadata.hpp"
#include "plugins/cluster/cluster.hpp"

namespace pgrm::cluster {

namespace {

class ClusterEvent : public Command {
public:
    Spec spec() const override {
        return {"cluster", "event", "", "lists recent cluster events",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    void declare(CLI::App& app) override {
        // Not CLI::PositiveNumber, whose message names a range up to DBL_MAX.
        const CLI::Range positive(1, std::numeric_limits<int>::max());
        app.add_option("--limit", limit_, "how many events, newest first (default: 20)")
            ->check(positive);
        app.add_option("--node", node_id_, "only the events of this node ID")
            ->check(positive);
        app.add_option("--event", event_, "only events of this name, e.g. primary_register");
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();

        // 1. The metadata on the local node.
        Connection conn = Connection::open(cfg.conninfo);
        Metadata meta(conn, cfg.cluster);
        meta.require_installed();

        // 2. The events, and the nodes that name them.
        std::vector<Event> events = meta.events(limit_, node_id_, event_);
        std::map<int, std::string> names;
        for (const Node& n : meta.nodes()) names[n.id] = n.name;

        // 3. One row per event.
        Result r;
        Table table{{"Node ID", "Name", "Event", "OK", "Timestamp", "Details"}, {}};
        nlohmann::json list = nlohmann::json::array();
        for (const Event& e : events) {
            std::string name = names.contains(e.node_id) ? names[e.node_id] : "";
            table.rows.push_back({std::to_string(e.node_id), name, e.event,
                                  e.successful ? "t" : "f", e.timestamp, e.details});
            list.push_back({{"id", e.id},
                            {"node_id", e.node_id},
                            {"node_name", name},
                            {"event", e.event},
                            {"successful", e.successful},
                            {"timestamp", e.timestamp},
                            {"details", e.details},
                            {"related_node_id", e.related_node_id ? nlohmann::json(*e.related_node_id) : nullptr}});
        }
        r.table = std::move(table);
        r.data = {{"events", std::move(list)}};
        return r;
    }

private:
    int limit_ = 20;
    std::optional<int> node_id_;
    std::optional<std::string> event_;
};

}  // namespace

std::unique_ptr<Command> make_event() { return std::make_unique<ClusterEvent>(); }

}  // namespace pgrm::cluster
