// node status: this node as its server, its record and its repmgrd see it: role,
// timeline, WAL positions, upstream, lag, the daemon's state, and whether failover is
// paused.
#include "core/daemon_socket.hpp"
#include "core/health.hpp"
#include "core/metadata.hpp"
#include "core/log.hpp"
#include "core/node_identity.hpp"
#include "core/server.hpp"
#include "core/timeouts.hpp"
#include "plugins/node/checks.hpp"
#include "plugins/node/node.hpp"
#include "plugins/node/status.hpp"

namespace pgrm::node {

namespace {

template <typename T>
nlohmann::json or_null(const std::optional<T>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string named(int id, const std::vector<Node>& nodes) {
    for (const Node& n : nodes)
        if (n.id == id) return "node " + std::to_string(id) + " (\"" + n.name + "\")";
    return "node " + std::to_string(id);
}

class NodeStatus : public Command {
public:
    Spec spec() const override {
        return {"node", "status", "", "shows this node's role, WAL positions, upstream, lag, repmgrd, and whether failover is paused",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();
        return node_status(cfg, timeouts::kCommandProbe, [&cfg] { return ask_daemon(cfg, timeouts::kDaemonAnswer); });
    }
};

}  // namespace

Result node_status(const Config& cfg, timeouts::Probe limits, const std::function<DaemonReply()>& ask) {
    // 1. This node's record, from its own server's metadata.
    Connection local = Connection::open(cfg.conninfo, ConnectOptions{.connect_timeout = limits.connect});
    Metadata meta(local, cfg.cluster, limits.query);
    std::vector<Node> nodes = meta.installed() ? meta.nodes() : std::vector<Node>{};
    // Failover paused or not, as the primary wrote it and this node replayed it.
    FailoverPause pause = (meta.installed() ? meta.failover_pause() : std::nullopt).value_or(FailoverPause{});
    std::optional<Node> me;
    for (const Node& n : nodes)
        if (n.id == cfg.node) me = n;

    // 2. The primary's WAL position (when it is another node), then this node's own
    //    state, so that the lag is not negative.
    std::optional<std::uint64_t> primary_lsn = active_primary_lsn(nodes, cfg.node, limits);
    NodeSample s = sample_node(local, limits.query);
    ServerFacts facts = query_server_facts(local);
    ServerControl control = server_control(cfg, cfg.data_directory.empty() ? facts.data_directory : cfg.data_directory,
                                           facts.config_file);
    std::optional<int> streaming_from;
    if (s.sender_host && s.sender_port)
        streaming_from = node_at(nodes, Endpoint{*s.sender_host, std::to_string(*s.sender_port)});
    Lag lag = s.in_recovery ? replication_lag(s, primary_lsn) : Lag{};

    // 3. repmgrd, through its socket.
    DaemonReply daemon = ask();

    // 4. For people, and for scripts.
    Result r;
    std::string role = s.in_recovery ? "standby" : s.read_only ? "primary, read-only (fenced)" : "primary";
    std::string registered = me ? me->type + (me->active ? "" : ", inactive") : "not registered";
    std::string sender = s.sender_host ? *s.sender_host + ":" + (s.sender_port ? std::to_string(*s.sender_port) : "?") : "";
    std::string upstream = "none";
    if (s.in_recovery) {
        upstream = me && me->upstream_node_id ? named(*me->upstream_node_id, nodes) : "not registered";
        upstream += s.receiver_status == "streaming"
                        ? "; streaming from " + (streaming_from ? named(*streaming_from, nodes) : sender)
                        : "; not streaming (WAL receiver: " + s.receiver_status.value_or("none") + ")";
    }
    std::string lag_text = "-";
    if (s.in_recovery)
        lag_text = (lag.bytes ? std::to_string(*lag.bytes) + " bytes" : "bytes unknown") + ", " +
                   (lag.seconds ? std::to_string(static_cast<long long>(*lag.seconds)) + " s" : "seconds unknown") +
                   (s.replay_paused ? " (replay is paused)" : "");
    std::string daemon_text = daemon.running ? "running" : "not running";
    if (daemon.state.is_object()) {
        if (daemon.state.contains("pid")) daemon_text += ", pid " + daemon.state["pid"].dump();
        if (daemon.state.contains("state") && daemon.state["state"].is_string())
            daemon_text += ", state " + daemon.state["state"].get<std::string>();
        if (daemon.state.contains("since") && daemon.state["since"].is_string())
            daemon_text += " since " + daemon.state["since"].get<std::string>();
        if (daemon.state.contains("reason") && daemon.state["reason"].is_string() &&
            !daemon.state["reason"].get<std::string>().empty())
            daemon_text += " (" + daemon.state["reason"].get<std::string>() + ")";
        if (daemon.state.contains("paused") && daemon.state["paused"] == true)
            daemon_text += "; failover paused";
        else if (daemon.state.contains("pause_overridden") && daemon.state["pause_overridden"] == true)
            daemon_text += "; failover goes on despite the pause (\"service unpause\" with no primary)";
    } else if (daemon.running && !daemon.error.empty()) {
        daemon_text += " (" + daemon.error + ")";
    }
    auto line = [&](const std::string& key, const std::string& value) {
        r.lines.push_back("  " + key + std::string(key.size() < 14 ? 14 - key.size() : 1, ' ') + value);
    };
    r.lines.push_back("Node " + std::to_string(cfg.node) + " (\"" + cfg.node_name + "\") of cluster \"" + cfg.cluster + "\":");
    line("role:", role + " (registered: " + registered + ")");
    line("PostgreSQL:", std::to_string(s.version_num / 10000) + "." + std::to_string(s.version_num % 10000));
    line("timeline:", std::to_string(s.timeline));
    line("current LSN:", s.current_lsn.value_or("-"));
    line("received LSN:", s.receive_lsn.value_or("-"));
    line("replayed LSN:", s.replay_lsn.value_or("-"));
    line("upstream:", upstream);
    line("lag:", lag_text);
    line("repmgrd:", daemon_text);
    line("failover:", cfg.failover + "; " + describe(pause));
    line("server control:", control.start + " (" + describe(control) + ")");
    if (!control.warning.empty()) log::warning(control.warning);

    nlohmann::json daemon_json = {{"running", daemon.running}};
    daemon_json["state"] = daemon.state.is_object() ? daemon.state : nlohmann::json(nullptr);
    daemon_json["error"] = daemon.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(daemon.error);
    r.data = {{"cluster", cfg.cluster},
              {"node_id", cfg.node},
              {"node_name", cfg.node_name},
              {"registered", me ? to_json(*me) : nlohmann::json(nullptr)},
              {"role", s.in_recovery ? "standby" : "primary"},
              {"read_only", s.read_only},
              {"server_version_num", s.version_num},
              {"timeline", s.timeline},
              {"current_lsn", or_null(s.current_lsn)},
              {"receive_lsn", or_null(s.receive_lsn)},
              {"replay_lsn", or_null(s.replay_lsn)},
              {"replay_paused", s.replay_paused},
              {"upstream_node_id", me ? or_null(me->upstream_node_id) : nlohmann::json(nullptr)},
              {"receiver_status", or_null(s.receiver_status)},
              {"streaming_from_node_id", or_null(streaming_from)},
              {"sender", sender.empty() ? nlohmann::json(nullptr) : nlohmann::json(sender)},
              {"lag_bytes", or_null(lag.bytes)},
              {"lag_seconds", or_null(lag.seconds)},
              {"daemon", std::move(daemon_json)},
              {"failover", cfg.failover},
              {"failover_pause", to_json(pause)},
              {"server_control", to_json(control)}};
    return r;
}

}  // namespace pgrm::node

namespace pgrm {

void register_node_status(Registry& registry) { registry.add(std::make_unique<node::NodeStatus>()); }

}  // namespace pgrm
