// service status: repmgrd on every node (repmgr 5's "service status", repmgr 4's "daemon
// status"): each registered node's role and status as cluster show finds them, whether
// its repmgrd runs and its pid, whether it counts failover as paused, and when a standby's
// repmgrd last saw its upstream. Only this node's repmgrd can be asked (its socket is on
// this host); of the others, what their records in the metadata say, and the pause their
// own server holds, which is what their repmgrd reads. Every node is asked at once.
#include "plugins/service/status.hpp"

#include <cmath>
#include <future>

#include "core/daemon_socket.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/result.hpp"
#include "core/timeouts.hpp"
#include "plugins/cluster/show.hpp"
#include "plugins/service/service.hpp"

namespace pgrm::service {

namespace {

std::string named(const Node& n) { return "node " + std::to_string(n.id) + " (\"" + escape_control(n.name) + "\")"; }

std::string whole_seconds(double s) { return std::to_string(static_cast<long long>(std::floor(std::max(0.0, s)))); }

template <typename T>
nlohmann::json or_null(const std::optional<T>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// One node's server as cluster show probes it, and the pause its own metadata holds.
struct Asked {
    cluster::Probe probe;
    std::optional<FailoverPause> pause;
};

Asked ask(const Node& node, const std::string& cluster_name) {
    constexpr timeouts::Probe limits = timeouts::kCommandProbe;
    Asked a{cluster::probe(node.conninfo, limits), std::nullopt};
    if (!a.probe.reachable) return a;
    try {
        Connection c = Connection::open(node.conninfo, ConnectOptions{.connect_timeout = limits.connect});
        a.pause = Metadata(c, cluster_name, limits.query).failover_pause();
    } catch (const Error& e) {
        log::info(named(node) + ": failover pause not read: " + e.what());
    }
    return a;
}

class ServiceStatus : public Command {
public:
    Spec spec() const override {
        return {"service", "status", "",
                "shows repmgrd on every node: running, pid, whether failover is paused, upstream last seen",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {"daemon"}};
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();

        // 1. The registered nodes, the pause and each daemon's last record, from this
        //    node's metadata; failing to reach this node is an error.
        Connection conn = Connection::open(cfg.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
        Metadata meta(conn, cfg.cluster, timeouts::kProbeQuery);
        meta.require_installed();
        std::vector<Node> nodes = meta.nodes();
        FailoverPause pause = meta.failover_pause().value_or(FailoverPause{});
        bool has_heartbeat = meta.version() >= 2;  // repl_nodes.last_seen
        std::vector<DaemonFacts> facts(nodes.size());
        for (size_t i = 0; i < nodes.size(); ++i) {
            facts[i].local = nodes[i].id == cfg.node;
            if (nodes[i].type == "primary" && has_heartbeat) facts[i].record_age = meta.seconds_since_seen(nodes[i].id);
            else if (nodes[i].type != "primary") facts[i].record_age = meta.seconds_since_monitored(nodes[i].id);
        }

        // 2. Every node's server at once, and meanwhile this node's repmgrd.
        std::vector<std::future<Asked>> pending;
        for (const Node& n : nodes) pending.push_back(std::async(std::launch::async, ask, n, cfg.cluster));
        DaemonReply mine = ask_daemon(cfg, timeouts::kDaemonAnswer);
        std::vector<Asked> asked;
        std::vector<cluster::Probe> probes;
        for (auto& f : pending) {
            asked.push_back(f.get());
            probes.push_back(asked.back().probe);
        }

        // 3. Each node's row, as text and as data.
        Result r;
        Table table{{"ID", "Name", "Role", "Status", "Upstream", "repmgrd", "PID", "Paused?", "Upstream last seen"}, {}};
        nlohmann::json node_list = nlohmann::json::array();
        std::vector<std::string> notes;
        for (size_t i = 0; i < nodes.size(); ++i) {
            const Node& n = nodes[i];
            DaemonFacts& f = facts[i];
            f.pause = asked[i].pause;
            if (f.local) {
                f.answered = mine.running;
                f.state = mine.state;
            }
            cluster::NodeView node_view =
                cluster::derive_view(n, probes[i], nodes, cluster::primary_lsn_for(n, nodes, probes));
            DaemonView v = derive_daemon_view(n, f, timeouts::daemon_alive(cfg));
            table.rows.push_back({std::to_string(n.id), n.name, node_view.role, node_view.status_text(),
                                  node_view.upstream_name, v.running_text, v.pid ? std::to_string(*v.pid) : "n/a",
                                  v.paused_text, v.upstream_last_seen_text});

            nlohmann::json j = to_json(n);
            j["role_found"] = node_view.role_found;
            j["status"] = node_view.status;
            j["upstream_name"] = node_view.upstream_name;
            j["error"] = probes[i].reachable ? nlohmann::json(nullptr) : nlohmann::json(probes[i].error);
            j["repmgrd"] = {{"running", or_null(v.running)},
                            {"source", f.local ? "socket" : "metadata"},
                            {"pid", or_null(v.pid)},
                            {"state", v.state.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.state)},
                            {"last_record_seconds", or_null(f.record_age)},
                            {"error", f.local && !mine.running ? nlohmann::json(mine.error) : nlohmann::json(nullptr)}};
            j["paused"] = or_null(v.paused);
            j["pause_overridden"] = v.pause_overridden;
            j["failover_pause"] = f.pause ? to_json(*f.pause) : nlohmann::json(nullptr);
            j["upstream_last_seen_seconds"] = or_null(v.upstream_last_seen);
            node_list.push_back(std::move(j));

            if (!probes[i].reachable && n.active) notes.push_back(named(n) + " is unreachable: " + probes[i].error);
            if (!v.note.empty() && n.active) notes.push_back(v.note);
            if (f.pause && f.pause->paused != pause.paused)
                notes.push_back(named(n) + "'s metadata says failover is " + (f.pause->paused ? "" : "not ") +
                                "paused, this node's that it is " + (pause.paused ? "" : "not ") +
                                "paused: one of them has not replayed the change yet");
        }

        // 4. What needs a look, then the pause as this node's metadata has it.
        if (!notes.empty()) r.lines.push_back("");
        for (const std::string& note : notes) r.lines.push_back("  - " + note);
        r.table = std::move(table);
        r.summary = "failover " + describe(pause) + " in cluster \"" + cfg.cluster + "\"";
        r.data = {{"cluster", cfg.cluster},
                  {"node_id", cfg.node},
                  {"failover_pause", to_json(pause)},
                  {"nodes", std::move(node_list)}};
        return r;
    }
};

}  // namespace

DaemonView derive_daemon_view(const Node& node, const DaemonFacts& f, std::chrono::seconds alive) {
    DaemonView v;
    // A field of this node's repmgrd's state line (the socket's other end may send anything).
    auto field = [&f](const char* key) -> const nlohmann::json* {
        if (!f.local || !f.answered || !f.state.is_object()) return nullptr;
        auto it = f.state.find(key);
        return it == f.state.end() ? nullptr : &*it;
    };

    // Running: this node's repmgrd answers or not; another's ran while its records are fresh.
    if (f.local) {
        v.running = f.answered;
        v.running_text = f.answered ? "running" : "not running";
        if (auto pid = field("pid"); pid && pid->is_number_integer()) v.pid = pid->get<long long>();
        if (auto state = field("state"); state && state->is_string()) v.state = state->get<std::string>();
    } else if (f.record_age && *f.record_age < static_cast<double>(alive.count())) {
        v.running = true;
        v.running_text = "running";
    } else {
        v.running_text = "unknown";
        v.note = "node " + std::to_string(node.id) + " (\"" + escape_control(node.name) + "\"): its repmgrd " +
                 (f.record_age ? "last recorded " + (node.type == "primary" ? std::string("a heartbeat ")
                                                                             : std::string("a monitoring row ")) +
                                     whole_seconds(*f.record_age) + " s ago"
                               : std::string("has recorded nothing")) +
                 " (running: under " + std::to_string(alive.count()) +
                 " s); only a repmgrd on this host can be asked";
    }

    // Paused: as this node's repmgrd counts it, else as the node's metadata says.
    if (auto paused = field("paused"); paused && paused->is_boolean()) {
        v.paused = paused->get<bool>();
        auto overridden = field("pause_overridden");
        v.pause_overridden = overridden && overridden->is_boolean() && overridden->get<bool>();
    } else if (f.pause) {
        v.paused = f.pause->paused;
    }
    v.paused_text = !v.paused ? "n/a" : *v.paused ? "yes" : v.pause_overridden ? "no (overridden)" : "no";

    // A standby's repmgrd records a monitoring row each pass its upstream answers.
    if (node.type != "primary" && f.record_age) {
        v.upstream_last_seen = *f.record_age;
        v.upstream_last_seen_text = whole_seconds(*f.record_age) + " second(s) ago";
    } else {
        v.upstream_last_seen_text = "n/a";
    }
    return v;
}

}  // namespace pgrm::service

namespace pgrm {

void register_service_status(Registry& registry) { registry.add(std::make_unique<service::ServiceStatus>()); }

}  // namespace pgrm
