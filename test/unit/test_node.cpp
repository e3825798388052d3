#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "plugins/node/rejoin.hpp"

using namespace pgrm;

namespace {

const std::string kSystem = "7300000000000000001";

NodeProbe probe(int id, bool reachable, bool writable, bool marked, const std::string& why_not = "") {
    NodeProbe p;
    p.node.id = id;
    p.node.name = "node" + std::to_string(id);
    p.reachable = reachable;
    p.writable = writable;
    p.marked_primary = marked;
    p.why_not = why_not;
    return p;
}

Error refusal_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no refusal");
    return Error(ExitCode::Success, "");
}

LocalNode stopped_former_primary() {
    LocalNode l;
    l.id = 1;
    l.data_directory = "/data/node1";
    l.control.system_identifier = kSystem;
    l.control.wal_log_hints = true;
    l.control.state = "shut down";
    return l;
}

Node primary() {
    Node n;
    n.id = 2;
    n.name = "node2";
    return n;
}

bool has_step(const NodeRejoinPlan& p, const std::string& text) {
    for (const auto& s : p.steps)
        if (s.find(text) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("the primary is the one writable node its own metadata marks as primary", "[node]") {
    std::vector<NodeProbe> probes = {probe(2, true, true, true), probe(3, true, false, false),
                                     probe(4, false, false, false, "connection refused")};
    CHECK(choose_primary(probes, 1).id == 2);
}

TEST_CASE("this node never counts, even when it still answers as a primary", "[node]") {
    std::vector<NodeProbe> probes = {probe(1, true, true, true), probe(2, true, true, true)};
    CHECK(choose_primary(probes, 1).id == 2);
}

TEST_CASE("no writable node is refused, naming the ones that did not answer", "[node]") {
    std::vector<NodeProbe> probes = {probe(2, false, false, false, "connection refused"), probe(3, true, false, false)};
    Error e = refusal_of([&] { choose_primary(probes, 1); });
    CHECK(e.code() == ExitCode::BadConfig);
    CHECK(std::string(e.what()) == "no registered node accepts writes");
    CHECK(e.detail() == "node 2 (\"node2\"): connection refused");
    CHECK(e.hint().find("standby promote") != std::string::npos);
}

TEST_CASE("two writable nodes are refused: which one is the primary is not ours to guess", "[node]") {
    std::vector<NodeProbe> probes = {probe(2, true, true, true), probe(3, true, true, false)};
    Error e = refusal_of([&] { choose_primary(probes, 1); });
    CHECK(std::string(e.what()) == "more than one registered node accepts writes: node 2 (\"node2\"), node 3 (\"node3\")");
}

TEST_CASE("a fenced former primary is passed over, and named when no other node takes writes", "[node]") {
    NodeProbe fenced = probe(3, true, false, true);
    fenced.fenced = true;
    CHECK(choose_primary({fenced, probe(2, true, true, true)}, 1).id == 2);
    Error e = refusal_of([&] { choose_primary({fenced, probe(2, true, false, false)}, 1); });
    CHECK(std::string(e.what()) == "no registered node accepts writes");
    CHECK(e.detail() == "node 3 (\"node3\"): fenced (read-only by its configuration)");
}

TEST_CASE("a writable node the metadata does not mark as primary is refused", "[node]") {
    Error e = refusal_of([&] { choose_primary({probe(2, true, true, false)}, 1); });
    CHECK(std::string(e.what()) == "node 2 (\"node2\") accepts writes but is not registered as the primary");
    CHECK(e.hint().find("master register --force") != std::string::npos);
}

TEST_CASE("a running server or a directory without data is refused before anything else", "[node]") {
    LocalNode l = stopped_former_primary();
    CHECK_NOTHROW(check_local_node(l));

    l.running = true;
    l.stop_command = "pg_ctlcluster 15 n1 stop";
    Error e = refusal_of([&] { check_local_node(l); });
    CHECK(e.code() == ExitCode::BadConfig);
    CHECK(std::string(e.what()) == "the server of node 1 is running on \"/data/node1\"");
    CHECK(e.hint().find("stop it first (pg_ctlcluster 15 n1 stop)") == 0);

    l = stopped_former_primary();
    l.control = ControlData{};
    e = refusal_of([&] { check_local_node(l); });
    CHECK(std::string(e.what()) == "no PostgreSQL data directory in \"/data/node1\"");
}

TEST_CASE("another database system is a re-clone, not a rejoin", "[node]") {
    LocalNode l = stopped_former_primary();
    l.control.system_identifier = "7399999999999999999";
    Error e = refusal_of([&] { plan_node_rejoin(l, primary(), kSystem, {true, "", ""}, 60); });
    CHECK(std::string(e.what()) == "the data directory of node 1 belongs to another database system than node 2 (\"node2\")");
    CHECK(e.hint().find("--force standby clone") != std::string::npos);
}

TEST_CASE("a rewindable node is rewound, and the plan says why and what follows", "[node]") {
    NodeRejoinPlan p = plan_node_rejoin(stopped_former_primary(), primary(), kSystem, {true, "", ""}, 45);
    CHECK(p.method == "pg_rewind");
    CHECK(p.why == "the data directory is an earlier state of the primary's database system, with wal_log_hints on");
    CHECK(p.steps.front().find("checkpoint the source") == 0);
    CHECK(has_step(p, "keep the target's own configuration files"));
    CHECK(has_step(p, "write standby.signal and primary_conninfo (node 2 (\"node2\"))"));
    CHECK(has_step(p, "wait up to 45 s"));
    CHECK(p.steps.back() == "record the event node_rejoin");
    CHECK_FALSE(has_step(p, "single-user"));

    LocalNode checksums = stopped_former_primary();
    checksums.control.wal_log_hints = false;
    checksums.control.data_checksums = true;
    CHECK(plan_node_rejoin(checksums, primary(), kSystem, {true, "", ""}, 60).why.find("data checksums") !=
          std::string::npos);
}

TEST_CASE("a crashed primary is recovered by pg_rewind itself; a crashed standby is started once", "[node]") {
    LocalNode crashed = stopped_former_primary();
    crashed.control.state = "in production";
    NodeRejoinPlan p = plan_node_rejoin(crashed, primary(), kSystem, {true, "", ""}, 60);
    CHECK(p.rewind.before == RewindCheck::Before::SingleUserRecovery);
    CHECK(has_step(p, "first finishes the target's crash recovery in single-user mode"));

    crashed.control.state = "in archive recovery";
    crashed.standby_signal = true;
    p = plan_node_rejoin(crashed, primary(), kSystem, {true, "", ""}, 60);
    CHECK(p.rewind.before == RewindCheck::Before::StartAndStopAsStandby);
    CHECK(p.steps.front().find("start it once as a standby and stop it") != std::string::npos);
    CHECK_FALSE(has_step(p, "single-user"));
}

TEST_CASE("without wal_log_hints or checksums the node is copied by an rsync delta", "[node]") {
    LocalNode l = stopped_former_primary();
    l.control.wal_log_hints = false;
    NodeRejoinPlan p = plan_node_rejoin(l, primary(), kSystem, {false, "node2", "postgres"}, 60);
    CHECK(p.method == "rsync");
    CHECK(p.why == "the target has neither wal_log_hints nor data checksums");
    CHECK(has_step(p, "copy only changed files with rsync from postgres@node2 over ssh"));
}

TEST_CASE("a writable node not yet recorded as primary is a promotion in progress, worth asking again", "[node]") {
    CHECK(promotion_in_progress({probe(2, true, true, false), probe(3, true, false, false)}, 1));
    CHECK_FALSE(promotion_in_progress({probe(2, true, true, true)}, 1));                          // recorded
    CHECK_FALSE(promotion_in_progress({probe(2, true, false, false)}, 1));                        // none writable
    CHECK_FALSE(promotion_in_progress({probe(2, true, true, false), probe(3, true, true, false)}, 1));  // two
    CHECK_FALSE(promotion_in_progress({probe(1, true, true, false)}, 1));                         // only this node
}
