// cluster show: the state of every registered node. The node list comes from the local
// node's metadata (replicated, so a standby has it too); every node is then probed at
// once, so dead nodes cost one connect timeout together, not one each.
#include "plugins/cluster/show.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <future>
#include <map>

#include "core/conninfo.hpp"
#include "core/error.hpp"
#include "core/etcd.hpp"
#include "core/log.hpp"
#include "core/timeouts.hpp"
#include "plugins/cluster/cluster.hpp"

namespace pgrm::cluster {

namespace {

// One round trip per node: its role, the WAL positions that role has, its WAL receiver
// (one row at most; the LEFT JOIN keeps a row when there is none), and whether the
// server's own configuration makes it read-only, as repmgrd's fence does (a value set
// for this session, by PGOPTIONS or ALTER ROLE, does not count).
const char* const kProbeSql =
    "SELECT pg_catalog.pg_is_in_recovery(), "
    "       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL "
    "            ELSE pg_catalog.pg_current_wal_lsn()::text END, "
    "       pg_catalog.pg_last_wal_receive_lsn()::text, "
    "       pg_catalog.pg_last_wal_replay_lsn()::text, "
    "       r.status, r.sender_host, r.sender_port, "
    "       (SELECT s.setting = 'on' AND s.source = 'configuration file' "
    "          FROM pg_catalog.pg_settings AS s WHERE s.name = 'default_transaction_read_only') "
    "  FROM (VALUES (1)) AS one "
    "  LEFT JOIN pg_catalog.pg_stat_wal_receiver AS r ON true";

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

Probe probe(const std::string& conninfo, timeouts::Probe limits) {
    Probe p;
    try {
        Connection conn = Connection::open(conninfo, ConnectOptions{.connect_timeout = limits.connect});
        Rows r = conn.exec(kProbeSql, {}, limits.query);
        p.reachable = true;
        p.in_recovery = r.get_bool(0, 0);
        p.current_lsn = r.get_opt(0, 1);
        p.receive_lsn = r.get_opt(0, 2);
        p.replay_lsn = r.get_opt(0, 3);
        p.receiver_status = r.get_opt(0, 4);
        p.sender_host = r.get_opt(0, 5);
        if (!r.is_null(0, 6)) p.sender_port = static_cast<int>(r.get_int(0, 6));
        p.read_only = r.get_bool(0, 7);
    } catch (const ConnectionError& e) {
        p.failure = e.failure();
        p.error = redact_secrets(e.detail().empty() ? e.what()
                                                    : e.what() + (": " + first_line(e.detail())));
    } catch (const Error& e) {
        p.error = redact_secrets(e.detail().empty() ? e.what()
                                                    : e.what() + (": " + first_line(e.detail())));
    }
    return p;
}

std::vector<Probe> probe_all(const std::vector<Node>& nodes, timeouts::Probe limits) {
    std::vector<std::future<Probe>> pending;
    for (const Node& n : nodes) pending.push_back(std::async(std::launch::async, probe, n.conninfo, limits));
    std::vector<Probe> probes;
    for (auto& f : pending) probes.push_back(f.get());
    return probes;
}

namespace {

std::string upstream_name(const Node& node, const std::vector<Node>& nodes) {
    if (!node.upstream_node_id) return "";
    for (const Node& n : nodes)
        if (n.id == *node.upstream_node_id) return n.name;
    return "node " + std::to_string(*node.upstream_node_id);  // not registered (any more)
}

template <typename T>
nlohmann::json or_null(const std::optional<T>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json node_json(const Node& node, const Probe& probe, const NodeView& view) {
    nlohmann::json j = to_json(node);  // conninfo redacted
    j["role_found"] = view.role_found;
    j["mark"] = std::string(1, view.mark);
    j["status"] = view.status;
    j["upstream_name"] = view.upstream_name;
    j["streaming"] = or_null(view.streaming);
    j["lag_bytes"] = or_null(view.lag_bytes);
    j["current_lsn"] = or_null(probe.current_lsn);
    j["receive_lsn"] = or_null(probe.receive_lsn);
    j["replay_lsn"] = or_null(probe.replay_lsn);
    j["receiver_status"] = or_null(probe.receiver_status);
    j["read_only"] = probe.reachable ? nlohmann::json(probe.read_only) : nlohmann::json(nullptr);
    j["sender_host"] = or_null(probe.sender_host);
    j["sender_port"] = or_null(probe.sender_port);
    j["error"] = probe.reachable ? nlohmann::json(nullptr) : nlohmann::json(probe.error);
    j["connection_failure"] = probe.failure ? nlohmann::json(connect_failure_name(*probe.failure)) : nlohmann::json(nullptr);
    return j;
}

std::vector<std::string> table_row(const Node& node, const NodeView& view,
                                   const nlohmann::json& json) {
    std::string streaming = view.streaming ? (*view.streaming ? "yes" : "no") : "";
    std::string lag = view.lag_bytes ? std::to_string(*view.lag_bytes) : "";
    return {std::to_string(node.id), node.name, view.role, view.status_text(),
            view.upstream_name, streaming, lag, json["conninfo"].get<std::string>()};
}

class ClusterShow : public Command {
public:
    Spec spec() const override {
        return {"cluster", "show", "", "shows the state of every registered node",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    Result run(Context& ctx) override { return show_cluster(ctx.cfg(), timeouts::kCommandProbe, true); }
};

}  // namespace

std::optional<std::uint64_t> primary_lsn_for(const Node& node, const std::vector<Node>& nodes,
                                             const std::vector<Probe>& probes) {
    std::optional<std::uint64_t> only;
    int writable = 0;
    for (size_t i = 0; i < nodes.size() && i < probes.size(); ++i) {
        const Probe& p = probes[i];
        if (!p.reachable || p.in_recovery || !p.current_lsn) continue;
        auto lsn = parse_lsn(*p.current_lsn);
        if (node.upstream_node_id == nodes[i].id) return lsn;
        if (p.read_only) continue;
        ++writable;
        only = lsn;
    }
    return writable == 1 ? only : std::nullopt;
}

NodeView derive_view(const Node& node, const Probe& probe, const std::vector<Node>& nodes,
                     std::optional<std::uint64_t> primary_lsn) {
    NodeView v;
    v.role = node.active ? node.type : "inactive " + node.type;
    v.upstream_name = upstream_name(node, nodes);
    if (!probe.reachable && probe.failure && server_alive(*probe.failure)) {
        // It answered: running, though what it is cannot be asked.
        v.role_found = "unknown";
        v.mark = node.active ? '?' : '!';
        v.status = "running, " + std::string(describe(*probe.failure));
        return v;
    }
    if (!probe.reachable) {
        v.role_found = "unreachable";
        v.mark = node.active ? '?' : '-';
        v.status = node.active ? "unreachable" : "inactive";
        return v;
    }

    v.role_found = probe.in_recovery ? "standby" : "primary";
    v.status = "running";
    if (v.role_found != node.type) {
        v.mark = '!';
        v.status += " as " + v.role_found;
    } else if (!node.active) {
        v.mark = '!';  // running, though recorded as inactive
    } else if (v.role_found == "primary") {
        v.mark = '*';
    }
    if (!probe.in_recovery && probe.read_only) v.status += ", read-only";

    if (probe.in_recovery) {
        v.streaming = probe.receiver_status == "streaming";
        auto replay = probe.replay_lsn ? parse_lsn(*probe.replay_lsn) : std::nullopt;
        // Probes are not simultaneous: a standby may have replayed past the sampled
        // primary position, which is no lag rather than a negative one.
        if (replay && primary_lsn)
            v.lag_bytes = static_cast<long long>(*primary_lsn > *replay ? *primary_lsn - *replay : 0);
    }
    return v;
}

namespace {

// dcs = etcd: what each node's repmgrd last published (etcd::NodeState), by node id.
std::map<int, etcd::NodeState> published_states(const Config& cfg) {
    std::map<int, etcd::NodeState> states;
    etcd::Client client(cfg);
    for (const auto& kv : client.list(cfg.etcd_prefix + "nodes/"))
        if (auto s = etcd::parse_node_state(kv.value); s && kv.key == etcd::node_state_key(cfg, s->node))
            states[s->node] = *s;
    return states;
}

Probe probe_from(const etcd::NodeState& s) {
    Probe p;
    p.reachable = true;
    p.in_recovery = s.in_recovery;
    p.read_only = s.read_only;
    p.current_lsn = s.current_lsn;
    p.receive_lsn = s.receive_lsn;
    p.replay_lsn = s.replay_lsn;
    p.receiver_status = s.receiver_status;
    return p;
}

// The nodes as their repmgrd published them, for want of the local node's metadata: what
// the registration would say is guessed from it (the role from the server's recovery).
void nodes_from_etcd(const Config& cfg, std::vector<Node>& nodes, std::vector<Probe>& probes,
                     std::vector<std::optional<etcd::NodeState>>& from_etcd) {
    for (const auto& [id, s] : published_states(cfg)) {
        Node n;
        n.id = id;
        n.name = s.node_name.empty() ? "node" + std::to_string(id) : s.node_name;
        n.type = s.in_recovery ? "standby" : "primary";
        nodes.push_back(n);
        probes.push_back(probe_from(s));
        from_etcd.push_back(s);
    }
}

}  // namespace

Result show_cluster(const Config& cfg, timeouts::Probe limits, bool ask_etcd) {
    const bool dcs = ask_etcd && cfg.dcs == "etcd";
    // 1. The registered nodes, from the local node; failing to reach it is an error, but
    //    with dcs = etcd the nodes are then shown as they published themselves.
    std::vector<Node> nodes;
    std::optional<FailoverPause> pause;
    std::string local_failed;
    try {
        Connection conn = Connection::open(cfg.conninfo, ConnectOptions{.connect_timeout = limits.connect});
        Metadata meta(conn, cfg.cluster, limits.query);
        meta.require_installed();
        nodes = meta.nodes();
        pause = meta.failover_pause().value_or(FailoverPause{});
    } catch (const ConnectionError& e) {
        if (!dcs) throw;
        local_failed = redact_secrets(e.what());
    }

    // 2. Every node probed in parallel; an unreachable node is data, not an error.
    std::vector<Probe> probes = probe_all(nodes, limits);

    // 2b. dcs = etcd: a node out of reach whose repmgrd publishes its state is shown as it
    //     last did, saying so (its lease ends with the daemon, so a dead one has none).
    std::vector<std::optional<etcd::NodeState>> from_etcd(nodes.size());
    std::vector<Probe> direct = probes;
    std::string etcd_failed;
    if (!local_failed.empty()) {
        try {
            nodes_from_etcd(cfg, nodes, probes, from_etcd);
        } catch (const Error& e) {
            throw Error(ExitCode::DbConnection, local_failed, std::string("etcd: ") + e.what());
        }
        if (nodes.empty()) throw Error(ExitCode::DbConnection, local_failed, "etcd: no node's repmgrd publishes its state");
        direct = probes;  // not probed: no reason of their own
    } else if (dcs && std::any_of(probes.begin(), probes.end(), [](const Probe& p) { return !p.reachable; })) {
        try {
            auto states = published_states(cfg);
            for (size_t i = 0; i < nodes.size(); ++i)
                if (auto s = states.find(nodes[i].id); !probes[i].reachable && s != states.end()) {
                    from_etcd[i] = s->second;
                    probes[i] = probe_from(s->second);
                }
        } catch (const Error& e) {
            etcd_failed = e.what();
        }
    }
    const long long now_s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();

    // 3. What each probe means, as rows and as data.
    Result r;
    Table table{{"ID", "Name", "Role", "Status", "Upstream", "Streaming", "Lag",
                 "Connection string"},
                {}};
    nlohmann::json node_list = nlohmann::json::array();
    std::vector<std::string> writable;
    for (size_t i = 0; i < nodes.size(); ++i) {
        NodeView view = derive_view(nodes[i], probes[i], nodes,
                                    primary_lsn_for(nodes[i], nodes, probes));
        const auto& published = from_etcd[i];
        const long long age = published ? std::max(0LL, now_s - published->published_at) : 0;
        if (published)
            view.status += " (from etcd: its repmgrd, " + escape_control(published->daemon_state) + ", " +
                           std::to_string(age) + " s ago)";
        nlohmann::json j = node_json(nodes[i], probes[i], view);
        if (dcs) {
            j["source"] = published ? "etcd" : "postgresql";
            if (published) {
                j["error"] = local_failed.empty() ? nlohmann::json(direct[i].error) : nlohmann::json(nullptr);
                j["daemon_state"] = published->daemon_state;
                j["published_seconds_ago"] = age;
            }
        }
        table.rows.push_back(table_row(nodes[i], view, j));
        node_list.push_back(std::move(j));
        if (view.role_found == "primary" && !probes[i].read_only)
            writable.push_back("\"" + escape_control(nodes[i].name) + "\"");
        else if (view.role_found == "primary")
            r.lines.push_back("node " + std::to_string(nodes[i].id) + " (\"" + escape_control(nodes[i].name) +
                              "\") is a primary in read-only mode (fenced; a client can still ask for a "
                              "read-write transaction): to make it a standby, stop it and rejoin it with "
                              "\"repmgr node rejoin <primary>\"");
        if (view.role_found == "unknown")
            r.lines.push_back("node " + std::to_string(nodes[i].id) + " (\"" + escape_control(nodes[i].name) +
                              "\") is running but refused our connection: " + probes[i].error);
        else if (!probes[i].reachable && nodes[i].active)
            r.lines.push_back("node " + std::to_string(nodes[i].id) + " (\"" +
                              escape_control(nodes[i].name) + "\") is unreachable: " + probes[i].error);
        if (published && local_failed.empty())
            r.lines.push_back("node " + std::to_string(nodes[i].id) + " (\"" + escape_control(nodes[i].name) +
                              "\") is out of this command's reach (" + direct[i].error + "): its row is what its "
                              "repmgrd published to etcd " + std::to_string(age) + " s ago");
    }
    if (!etcd_failed.empty())
        r.lines.push_back("etcd: the nodes' published state could not be read: " + etcd_failed);
    if (!local_failed.empty())
        r.lines.insert(r.lines.begin(), "the local node is out of reach (" + local_failed +
                                            "): every row is what a node's repmgrd published to etcd, the role as "
                                            "its server runs (not as registered), and a node without a running "
                                            "repmgrd is missing");

    // 4. Split brain: more than one writable primary, which the user must see.
    if (writable.size() > 1) {
        std::string names;
        for (const auto& w : writable) names += (names.empty() ? "" : ", ") + w;
        std::string warning = "more than one primary is writable: " + names;
        log::warning(warning);
        r.lines.insert(r.lines.begin(), "WARNING: " + warning);
    }

    // 5. A pause, as this node's metadata says: the daemons are being held still.
    if (pause && pause->paused)
        r.lines.push_back("failover is " + describe(*pause) +
                          ": repmgrd neither fails over nor fences (\"repmgr service unpause\" resumes it)");

    r.table = std::move(table);
    r.data = {{"cluster", cfg.cluster},
              {"nodes", std::move(node_list)},
              {"failover_pause", pause ? to_json(*pause) : nlohmann::json(nullptr)}};
    return r;
}

std::unique_ptr<Command> make_show() { return std::make_unique<ClusterShow>(); }

}  // namespace pgrm::cluster
