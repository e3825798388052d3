#include "plugins/node/checks.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/timeline.hpp"

namespace pgrm::node {

namespace {

int severity(Status s) {
    switch (s) {
        case Status::Ok: return 0;
        case Status::Warning: return 1;
        case Status::Unknown: return 2;
        case Status::Critical: return 3;
    }
    return 2;
}

std::string named(const Node& n) { return "node " + std::to_string(n.id) + " (\"" + n.name + "\")"; }

std::string named(int id, const std::vector<Node>& nodes) {
    for (const Node& n : nodes)
        if (n.id == id) return named(n);
    return "node " + std::to_string(id);
}

// 12, 0.25, 1e+06 as Nagios reads numbers: no exponent, at most three decimals.
std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    std::string s = buf;
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
}

CheckResult result(const std::string& check, Status status, std::string text, std::vector<Perf> perf = {}) {
    return {check, status, std::move(text), std::move(perf)};
}

Status by_thresholds(double value, const Thresholds& t) {
    if (value >= t.critical) return Status::Critical;
    if (value >= t.warning) return Status::Warning;
    return Status::Ok;
}

// A '|' would start the performance data: Nagios must not see one in the text.
std::string plain(std::string s) {
    std::replace(s.begin(), s.end(), '|', '/');
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

std::string upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

std::string_view status_name(Status status) {
    switch (status) {
        case Status::Ok: return "OK";
        case Status::Warning: return "WARNING";
        case Status::Critical: return "CRITICAL";
        case Status::Unknown: return "UNKNOWN";
    }
    return "UNKNOWN";
}

Status worse(Status a, Status b) { return severity(a) >= severity(b) ? a : b; }

const std::vector<std::string>& check_names() {
    static const std::vector<std::string> names = {"role",    "replication_lag", "downstream", "upstream",
                                                   "archive_ready", "slots",     "daemon", "server_control"};
    return names;
}

std::optional<Thresholds> default_thresholds(const std::string& check) {
    if (check == "replication_lag") return Thresholds{300, 600};  // seconds, as repmgr 5
    if (check == "archive_ready") return Thresholds{16, 128};     // files, as repmgr 5
    return std::nullopt;
}

std::optional<double> parse_threshold(std::string_view text) {
    double v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v) || v < 0)
        return std::nullopt;
    return v;
}

CheckResult unknown(const std::string& check, const std::string& why) { return result(check, Status::Unknown, why); }

CheckResult judge_role(int node_id, const std::optional<Node>& registered, bool in_recovery, bool read_only) {
    const std::string check = "role";
    if (!registered) return result(check, Status::Unknown, "node " + std::to_string(node_id) + " is not registered");
    std::string who = named(*registered);
    const Node& n = *registered;
    if (n.type == "primary" && n.active) {
        if (in_recovery) return result(check, Status::Critical, who + " is registered as the primary but is a standby");
        if (read_only) return result(check, Status::Critical, who + " is the primary but read-only (fenced)");
        return result(check, Status::Ok, who + " is the primary, as registered");
    }
    if (n.type == "primary") {  // a former primary
        if (in_recovery)
            return result(check, Status::Warning, who + " is a standby, registered as an inactive primary");
        if (read_only)
            return result(check, Status::Warning, who + " is a former primary, read-only (fenced): rejoin it");
        return result(check, Status::Critical, who + " is an inactive former primary that accepts writes");
    }
    if (!in_recovery)
        return result(check, Status::Critical,
                      who + " is registered as a standby but " + (read_only ? "is a read-only primary" : "accepts writes"));
    if (!n.active) return result(check, Status::Warning, who + " is a standby, registered as inactive");
    return result(check, Status::Ok, who + " is a standby, as registered");
}

Lag replication_lag(const NodeSample& s, std::optional<std::uint64_t> primary_lsn) {
    Lag lag;
    auto replay = parse_lsn(s.replay_lsn.value_or(""));
    if (primary_lsn && replay)
        lag.bytes = static_cast<long long>(*primary_lsn > *replay ? *primary_lsn - *replay : 0);
    bool caught_up;
    if (lag.bytes) {
        caught_up = *lag.bytes == 0;
    } else {
        auto received = parse_lsn(s.receive_lsn.value_or(""));
        caught_up = s.receiver_status == "streaming" && received && replay && *replay >= *received;
    }
    if (caught_up)
        lag.seconds = 0.0;
    else if (s.replay_age_s)
        lag.seconds = std::max(0.0, *s.replay_age_s);
    return lag;
}

CheckResult judge_replication_lag(const NodeSample& s, const Lag& lag, const Thresholds& t) {
    const std::string check = "replication_lag";
    if (!s.in_recovery) return result(check, Status::Ok, "this node is the primary: no replication lag");
    std::vector<Perf> perf;
    std::string bytes = lag.bytes ? ", " + std::to_string(*lag.bytes) + " bytes" : "";
    std::string paused = s.replay_paused ? " (replay is paused)" : "";
    if (!lag.seconds)
        return result(check, Status::Unknown, "replication lag unknown: nothing replayed yet" + bytes + paused);
    perf.push_back({"lag", *lag.seconds, "s", t.warning, t.critical});
    if (lag.bytes) perf.push_back({"lag_bytes", static_cast<double>(*lag.bytes), "B", {}, {}});
    Status st = by_thresholds(*lag.seconds, t);
    return result(check, st, number(*lag.seconds) + " s behind the primary" + bytes + paused, std::move(perf));
}

CheckResult judge_downstream(int node_id, const std::vector<Node>& nodes, const std::vector<ReplicationClient>& clients) {
    const std::string check = "downstream";
    std::vector<std::string> attached, missing;
    for (const Node& n : nodes) {
        if (!n.active || n.type != "standby" || n.upstream_node_id != node_id) continue;
        bool seen = std::any_of(clients.begin(), clients.end(), [&](const ReplicationClient& c) {
            return c.application_name == n.name && (c.state == "streaming" || c.state == "catchup");
        });
        (seen ? attached : missing).push_back(named(n));
    }
    size_t expected = attached.size() + missing.size();
    std::vector<Perf> perf = {{"attached", static_cast<double>(attached.size()), "", {}, {}},
                              {"missing", static_cast<double>(missing.size()), "", {}, {}}};
    auto list = [](const std::vector<std::string>& v) {
        std::string out;
        for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
        return out;
    };
    if (expected == 0) return result(check, Status::Ok, "no standby is registered downstream of this node", std::move(perf));
    if (missing.empty())
        return result(check, Status::Ok,
                      std::to_string(expected) + " of " + std::to_string(expected) + " standbys attached: " + list(attached),
                      std::move(perf));
    return result(check, Status::Critical,
                  std::to_string(missing.size()) + " of " + std::to_string(expected) + " standbys not attached: " + list(missing),
                  std::move(perf));
}

CheckResult judge_upstream(const NodeSample& s, const std::optional<Node>& registered, const std::vector<Node>& nodes,
                           std::optional<int> streaming_from) {
    const std::string check = "upstream";
    if (!s.in_recovery) return result(check, Status::Ok, "this node is the primary: no upstream");
    if (!registered) return result(check, Status::Unknown, "this node is not registered: its upstream is not known");
    if (s.receiver_status != "streaming")
        return result(check, Status::Critical,
                      "not streaming (WAL receiver: " + s.receiver_status.value_or("none") + ")" +
                          (registered->upstream_node_id ? "; the metadata names " + named(*registered->upstream_node_id, nodes)
                                                        : std::string()));
    std::string sender = s.sender_host.value_or("?") + ":" + (s.sender_port ? std::to_string(*s.sender_port) : "?");
    std::string from = streaming_from ? named(*streaming_from, nodes) : sender + ", which is no registered node";
    if (!registered->upstream_node_id)
        return result(check, Status::Warning, "streaming from " + from + "; the metadata names no upstream");
    if (streaming_from == registered->upstream_node_id) return result(check, Status::Ok, "streaming from " + from);
    return result(check, Status::Warning,
                  "streaming from " + from + ", but the metadata names " + named(*registered->upstream_node_id, nodes));
}

CheckResult judge_archive_ready(long long ready, const Thresholds& t) {
    std::vector<Perf> perf = {{"ready_files", static_cast<double>(ready), "", t.warning, t.critical}};
    return result("archive_ready", by_thresholds(static_cast<double>(ready), t),
                  std::to_string(ready) + " WAL file" + (ready == 1 ? "" : "s") + " waiting to be archived", std::move(perf));
}

CheckResult judge_slots(const std::vector<SlotInfo>& slots) {
    std::string inactive;
    int count = 0;
    for (const SlotInfo& s : slots) {
        if (s.active) continue;
        ++count;
        inactive += (inactive.empty() ? "" : ", ") + ("\"" + s.name + "\"");
    }
    std::vector<Perf> perf = {{"inactive_slots", static_cast<double>(count), "", {}, {}}};
    if (count == 0)
        return result("slots", Status::Ok, std::to_string(slots.size()) + " replication slot" +
                                               (slots.size() == 1 ? "" : "s") + ", none inactive", std::move(perf));
    return result("slots", Status::Critical,
                  std::to_string(count) + " inactive replication slot" + (count == 1 ? "" : "s") + ": " + inactive,
                  std::move(perf));
}

CheckResult judge_daemon(int node_id, const DaemonReply& reply) {
    if (!reply.running) return result("daemon", Status::Critical, "repmgrd is not running for node " + std::to_string(node_id));
    if (!reply.state.is_object() || reply.state.empty())
        return result("daemon", Status::Warning, "repmgrd holds node " + std::to_string(node_id) + " but " +
                                                     (reply.error.empty() ? "sent no state" : reply.error));
    std::string text = "repmgrd is running";
    if (reply.state.contains("pid") && reply.state["pid"].is_number()) text += " (pid " + reply.state["pid"].dump() + ")";
    if (reply.state.contains("state") && reply.state["state"].is_string())
        text += ", state " + reply.state["state"].get<std::string>();
    // Paused, it would not fail over: worth a look, not an outage.
    if (auto paused = reply.state.find("paused"); paused != reply.state.end() && *paused == true)
        return result("daemon", Status::Warning, text + "; failover is paused (\"repmgr service unpause\" resumes it)");
    return result("daemon", Status::Ok, text);
}

std::string describe(const ServerControl& c) {
    if (c.via == "settings") return "service_start_command";
    if (c.via == "debian_cluster" && c.debian)
        return "Debian cluster " + c.debian->version + "/" + c.debian->name + " (" + c.debian->config_directory + ")";
    return "pg_ctl";
}

nlohmann::json to_json(const ServerControl& c) {
    auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
    nlohmann::json debian = nullptr;
    if (c.debian)
        debian = {{"version", c.debian->version}, {"name", c.debian->name}, {"config_directory", c.debian->config_directory}};
    return {{"via", c.via},         {"debian_cluster", debian}, {"start", c.start},
            {"stop", c.stop},       {"restart", c.restart},     {"reload", c.reload},
            {"config_file", or_null(c.config_file)}, {"warning", or_null(c.warning)}};
}

CheckResult judge_server_control(const ServerControl& c) {
    if (!c.warning.empty()) return result("server_control", Status::Warning, c.warning);
    return result("server_control", Status::Ok, "started with \"" + c.start + "\" (" + describe(c) + ")");
}

std::string format_perf(const Perf& p) {
    std::string out = p.label + "=" + number(p.value) + p.uom;
    if (p.warning || p.critical) {
        out += ";" + (p.warning ? number(*p.warning) : "");
        out += ";" + (p.critical ? number(*p.critical) : "");
    }
    return out;
}

std::string nagios_output(const std::vector<CheckResult>& results) {
    auto perfdata = [](const std::vector<CheckResult>& rs) {
        std::string out;
        for (const auto& r : rs)
            for (const auto& p : r.perf) out += (out.empty() ? "" : " ") + format_perf(p);
        return out.empty() ? out : " | " + out;
    };
    if (results.size() == 1) {
        const CheckResult& r = results.front();
        return "PGRM_" + upper(r.check) + " " + std::string(status_name(r.status)) + ": " + plain(r.text) + perfdata(results) +
               "\n";
    }
    Status overall = Status::Ok;
    std::string problems;
    for (const auto& r : results) {
        overall = worse(overall, r.status);
        if (r.status != Status::Ok)
            problems += (problems.empty() ? "" : ", ") + r.check + " " + std::string(status_name(r.status));
    }
    std::string out = "PGRM_NODE " + std::string(status_name(overall)) + ": " +
                      (problems.empty() ? std::to_string(results.size()) + " checks OK" : problems) + perfdata(results) + "\n";
    for (const auto& r : results) out += r.check + " " + std::string(status_name(r.status)) + ": " + plain(r.text) + "\n";
    return out;
}

nlohmann::json to_json(const CheckResult& r) {
    nlohmann::json perf = nlohmann::json::object();
    for (const Perf& p : r.perf) {
        nlohmann::json j = {{"value", p.value}, {"uom", p.uom}};
        j["warning"] = p.warning ? nlohmann::json(*p.warning) : nlohmann::json(nullptr);
        j["critical"] = p.critical ? nlohmann::json(*p.critical) : nlohmann::json(nullptr);
        perf[p.label] = std::move(j);
    }
    return {{"check", r.check}, {"status", std::string(status_name(r.status))}, {"text", r.text}, {"perfdata", perf}};
}

}  // namespace pgrm::node
