#include <catch2/catch.hpp>

#include "plugins/node/checks.hpp"

using namespace pgrm;
using namespace pgrm::node;

namespace {

Node make_node(int id, const std::string& type, bool active = true, std::optional<int> upstream = std::nullopt) {
    Node n;
    n.id = id;
    n.name = "node" + std::to_string(id);
    n.type = type;
    n.active = active;
    n.upstream_node_id = upstream;
    return n;
}

NodeSample standby(const std::string& receive, const std::string& replay, std::optional<double> age = 7.0) {
    NodeSample s;
    s.in_recovery = true;
    s.receive_lsn = receive;
    s.replay_lsn = replay;
    s.replay_age_s = age;
    s.receiver_status = "streaming";
    s.sender_host = "127.0.0.1";
    s.sender_port = 5432;
    return s;
}

const Thresholds kLag{300, 600};

}  // namespace

TEST_CASE("statuses keep Nagios's numbers, and the worst wins", "[node_check]") {
    CHECK(static_cast<int>(Status::Ok) == 0);
    CHECK(static_cast<int>(Status::Warning) == 1);
    CHECK(static_cast<int>(Status::Critical) == 2);
    CHECK(static_cast<int>(Status::Unknown) == 3);
    CHECK(worse(Status::Ok, Status::Warning) == Status::Warning);
    CHECK(worse(Status::Warning, Status::Unknown) == Status::Unknown);
    CHECK(worse(Status::Unknown, Status::Critical) == Status::Critical);
    CHECK(worse(Status::Critical, Status::Ok) == Status::Critical);
}

TEST_CASE("thresholds are numbers >= 0, with repmgr 5's defaults", "[node_check]") {
    CHECK(parse_threshold("10") == 10.0);
    CHECK(parse_threshold("0.5") == 0.5);
    CHECK(parse_threshold("0") == 0.0);
    CHECK_FALSE(parse_threshold(""));
    CHECK_FALSE(parse_threshold("-1"));
    CHECK_FALSE(parse_threshold("10s"));
    CHECK_FALSE(parse_threshold("nan"));
    CHECK_FALSE(parse_threshold("inf"));
    CHECK(default_thresholds("replication_lag")->warning == 300);
    CHECK(default_thresholds("replication_lag")->critical == 600);
    CHECK(default_thresholds("archive_ready")->warning == 16);
    CHECK(default_thresholds("archive_ready")->critical == 128);
    CHECK_FALSE(default_thresholds("role"));
    CHECK_FALSE(default_thresholds("daemon"));
}

TEST_CASE("role: the server's role against the record", "[node_check]") {
    CHECK(judge_role(1, make_node(1, "primary"), false, false).status == Status::Ok);
    CHECK(judge_role(2, make_node(2, "standby", true, 1), true, false).status == Status::Ok);
    // A registered primary in recovery, or fenced; a standby that accepts writes.
    CHECK(judge_role(1, make_node(1, "primary"), true, false).status == Status::Critical);
    CHECK(judge_role(1, make_node(1, "primary"), false, true).status == Status::Critical);
    CHECK(judge_role(2, make_node(2, "standby"), false, false).status == Status::Critical);
    // A former primary: fenced or rejoined needs tidying; writable is a second primary.
    CHECK(judge_role(1, make_node(1, "primary", false), false, true).status == Status::Warning);
    CHECK(judge_role(1, make_node(1, "primary", false), true, false).status == Status::Warning);
    CHECK(judge_role(1, make_node(1, "primary", false), false, false).status == Status::Critical);
    CHECK(judge_role(2, make_node(2, "standby", false), true, false).status == Status::Warning);
    auto r = judge_role(5, std::nullopt, true, false);
    CHECK(r.status == Status::Unknown);
    CHECK(r.text == "node 5 is not registered");
}

TEST_CASE("lag: bytes from the primary, seconds since the last replayed commit", "[node_check]") {
    // Caught up with the primary: no lag, however old the last commit.
    Lag l = replication_lag(standby("0/3000000", "0/3000000", 3600.0), 0x3000000);
    CHECK(l.bytes == 0);
    CHECK(l.seconds == 0.0);
    // Behind: the bytes, and the age of what it replayed.
    l = replication_lag(standby("0/3000100", "0/3000000", 42.0), 0x3000100);
    CHECK(l.bytes == 0x100);
    CHECK(l.seconds == 42.0);
    // Replayed past the primary's position read before: no lag, not a negative one.
    l = replication_lag(standby("0/3000200", "0/3000200", 9.0), 0x3000100);
    CHECK(l.bytes == 0);
    CHECK(l.seconds == 0.0);
    // Without the primary: caught up with what it received while streaming...
    l = replication_lag(standby("0/3000100", "0/3000100", 500.0), std::nullopt);
    CHECK_FALSE(l.bytes);
    CHECK(l.seconds == 0.0);
    // ... but not when it no longer streams: then the age of the last commit.
    NodeSample cut = standby("0/3000100", "0/3000100", 500.0);
    cut.receiver_status.reset();
    CHECK(replication_lag(cut, std::nullopt).seconds == 500.0);
    // Behind, and nothing replayed yet: unknown.
    CHECK_FALSE(replication_lag(standby("0/3000100", "0/3000000", std::nullopt), 0x3000100).seconds);
}

TEST_CASE("replication lag is judged by its thresholds, in seconds", "[node_check]") {
    NodeSample s = standby("0/3000100", "0/3000000");
    CHECK(judge_replication_lag(s, {0x100, 299.0}, kLag).status == Status::Ok);
    CHECK(judge_replication_lag(s, {0x100, 300.0}, kLag).status == Status::Warning);
    CHECK(judge_replication_lag(s, {0x100, 599.9}, kLag).status == Status::Warning);
    CHECK(judge_replication_lag(s, {0x100, 600.0}, kLag).status == Status::Critical);
    CHECK(judge_replication_lag(s, {std::nullopt, std::nullopt}, kLag).status == Status::Unknown);
    auto r = judge_replication_lag(s, {256, 12.5}, Thresholds{10, 60});
    CHECK(r.status == Status::Warning);
    CHECK(r.text == "12.5 s behind the primary, 256 bytes");
    REQUIRE(r.perf.size() == 2);
    CHECK(format_perf(r.perf[0]) == "lag=12.5s;10;60");
    CHECK(format_perf(r.perf[1]) == "lag_bytes=256B");
    NodeSample primary;
    primary.in_recovery = false;
    CHECK(judge_replication_lag(primary, {}, kLag).status == Status::Ok);
}

TEST_CASE("downstream: every active standby registered below this node is attached", "[node_check]") {
    std::vector<Node> nodes = {make_node(1, "primary"), make_node(2, "standby", true, 1), make_node(3, "standby", true, 1),
                               make_node(4, "standby", false, 1), make_node(5, "standby", true, 2)};
    std::vector<ReplicationClient> both = {{"node2", "streaming"}, {"node3", "catchup"}};
    CHECK(judge_downstream(1, nodes, both).status == Status::Ok);
    auto r = judge_downstream(1, nodes, {{"node2", "streaming"}, {"node3", "startup"}});
    CHECK(r.status == Status::Critical);
    CHECK(r.text == "1 of 2 standbys not attached: node 3 (\"node3\")");
    CHECK(judge_downstream(1, nodes, {}).status == Status::Critical);
    // node2 has node5 below it; node3 has none.
    CHECK(judge_downstream(2, nodes, {{"node5", "streaming"}}).status == Status::Ok);
    CHECK(judge_downstream(2, nodes, {}).status == Status::Critical);
    CHECK(judge_downstream(3, nodes, {}).status == Status::Ok);
}

TEST_CASE("upstream: a standby streams from the node its record names", "[node_check]") {
    std::vector<Node> nodes = {make_node(1, "primary"), make_node(2, "standby", true, 1), make_node(3, "standby", true, 1)};
    NodeSample s = standby("0/3000000", "0/3000000");
    CHECK(judge_upstream(s, nodes[1], nodes, 1).status == Status::Ok);
    auto r = judge_upstream(s, nodes[1], nodes, 3);
    CHECK(r.status == Status::Warning);
    CHECK(r.text == "streaming from node 3 (\"node3\"), but the metadata names node 1 (\"node1\")");
    CHECK(judge_upstream(s, nodes[1], nodes, std::nullopt).status == Status::Warning);
    s.receiver_status = "waiting";
    r = judge_upstream(s, nodes[1], nodes, std::nullopt);
    CHECK(r.status == Status::Critical);
    CHECK(r.text == "not streaming (WAL receiver: waiting); the metadata names node 1 (\"node1\")");
    s.receiver_status.reset();
    CHECK(judge_upstream(s, nodes[1], nodes, std::nullopt).status == Status::Critical);
    CHECK(judge_upstream(s, std::nullopt, nodes, std::nullopt).status == Status::Unknown);
    NodeSample primary;
    primary.in_recovery = false;
    CHECK(judge_upstream(primary, nodes[0], nodes, std::nullopt).status == Status::Ok);
}

TEST_CASE("archive-ready counts .ready files against its thresholds", "[node_check]") {
    Thresholds t{16, 128};
    CHECK(judge_archive_ready(0, t).status == Status::Ok);
    CHECK(judge_archive_ready(15, t).status == Status::Ok);
    CHECK(judge_archive_ready(16, t).status == Status::Warning);
    CHECK(judge_archive_ready(128, t).status == Status::Critical);
    CHECK(format_perf(judge_archive_ready(3, t).perf.at(0)) == "ready_files=3;16;128");
}

TEST_CASE("slots: any inactive one is critical", "[node_check]") {
    CHECK(judge_slots({}).status == Status::Ok);
    CHECK(judge_slots({{"node2", "physical", true}}).status == Status::Ok);
    auto r = judge_slots({{"node2", "physical", true}, {"old", "physical", false}, {"cdc", "logical", false}});
    CHECK(r.status == Status::Critical);
    CHECK(r.text == "2 inactive replication slots: \"old\", \"cdc\"");
}

TEST_CASE("daemon: running and answering, holding the node, or absent", "[node_check]") {
    DaemonReply none;
    none.error = "repmgrd is not running for this node";
    CHECK(judge_daemon(2, none).status == Status::Critical);
    DaemonReply silent;
    silent.running = true;
    silent.error = "repmgrd did not answer within 1000 ms";
    CHECK(judge_daemon(2, silent).status == Status::Warning);
    DaemonReply up;
    up.running = true;
    up.state = {{"pid", 42}, {"state", "standby"}};
    auto r = judge_daemon(2, up);
    CHECK(r.status == Status::Ok);
    CHECK(r.text == "repmgrd is running (pid 42), state standby");
    up.state["paused"] = false;
    CHECK(judge_daemon(2, up).status == Status::Ok);
    up.state["paused"] = true;
    up.state["state"] = "paused";
    r = judge_daemon(2, up);
    CHECK(r.status == Status::Warning);
    CHECK(r.text == "repmgrd is running (pid 42), state paused; failover is paused (\"repmgr service unpause\" resumes it)");
    up.state["paused"] = "yes";  // not a boolean: not paused
    CHECK(judge_daemon(2, up).status == Status::Ok);
}

TEST_CASE("Nagios output: one line for one check, a summary line first for several", "[node_check]") {
    CheckResult lag{"replication_lag", Status::Warning, "12 s behind | oddly", {{"lag", 12, "s", 10.0, 60.0}}};
    CHECK(nagios_output({lag}) == "PGRM_REPLICATION_LAG WARNING: 12 s behind / oddly | lag=12s;10;60\n");
    CheckResult role{"role", Status::Ok, "node 1 (\"node1\") is the primary, as registered", {}};
    CHECK(nagios_output({role}) == "PGRM_ROLE OK: node 1 (\"node1\") is the primary, as registered\n");
    CheckResult daemon{"daemon", Status::Critical, "repmgrd is not running for node 1", {}};
    CHECK(nagios_output({role, lag, daemon}) ==
          "PGRM_NODE CRITICAL: replication_lag WARNING, daemon CRITICAL | lag=12s;10;60\n"
          "role OK: node 1 (\"node1\") is the primary, as registered\n"
          "replication_lag WARNING: 12 s behind / oddly\n"
          "daemon CRITICAL: repmgrd is not running for node 1\n");
    CHECK(nagios_output({role, role}) ==
          "PGRM_NODE OK: 2 checks OK\n"
          "role OK: node 1 (\"node1\") is the primary, as registered\n"
          "role OK: node 1 (\"node1\") is the primary, as registered\n");
    CHECK(format_perf({"missing", 0, "", {}, {}}) == "missing=0");
}

TEST_CASE("server control: OK names the command and how it was found, WARNING carries the warning", "[node_check]") {
    ServerControl c;
    c.via = "debian_cluster";
    c.debian = DebianCluster{"15", "main", "/etc/postgresql/15/main"};
    c.start = "pg_ctlcluster 15 main start";
    CheckResult ok = judge_server_control(c);
    CHECK(ok.status == Status::Ok);
    CHECK(ok.text == "started with \"pg_ctlcluster 15 main start\" (Debian cluster 15/main (/etc/postgresql/15/main))");
    CHECK(to_json(c)["debian_cluster"]["name"] == "main");
    CHECK(to_json(c)["warning"].is_null());

    c.via = "pg_ctl";
    c.warning = "the server reads its configuration from elsewhere";
    CheckResult warn = judge_server_control(c);
    CHECK(warn.status == Status::Warning);
    CHECK(warn.text == c.warning);
    CHECK(to_json(c)["warning"] == c.warning);
}
