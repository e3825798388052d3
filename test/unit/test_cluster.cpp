#include <catch2/catch.hpp>

#include "plugins/cluster/show.hpp"

using pgrm::ConnectFailure;
using pgrm::Node;
using pgrm::cluster::derive_view;
using pgrm::parse_lsn;
using pgrm::cluster::primary_lsn_for;
using pgrm::cluster::Probe;

namespace {

Node node(int id, const std::string& name, const std::string& type,
          std::optional<int> upstream = std::nullopt, bool active = true) {
    Node n;
    n.id = id;
    n.name = name;
    n.type = type;
    n.upstream_node_id = upstream;
    n.active = active;
    n.conninfo = "host=" + name;
    return n;
}

Probe primary_probe(const std::string& lsn) {
    Probe p;
    p.reachable = true;
    p.current_lsn = lsn;
    return p;
}

Probe standby_probe(const std::string& replay, const std::string& status = "streaming") {
    Probe p;
    p.reachable = true;
    p.in_recovery = true;
    p.receive_lsn = replay;
    p.replay_lsn = replay;
    p.receiver_status = status;
    return p;
}

Probe unreachable_probe() {
    Probe p;
    p.error = "could not connect";
    return p;
}

const std::vector<Node> two_nodes = {node(1, "n1", "primary"), node(2, "n2", "standby", 1)};

}  // namespace

TEST_CASE("parse_lsn reads X/Y as (X << 32) | Y", "[cluster]") {
    CHECK(parse_lsn("0/0") == 0u);
    CHECK(parse_lsn("1/0") == (std::uint64_t{1} << 32));
    CHECK(parse_lsn("0/1") == 1u);
    CHECK(parse_lsn("16/B374D848") == ((std::uint64_t{0x16} << 32) | 0xB374D848u));
    CHECK(parse_lsn("ffffffff/ffffffff") == UINT64_MAX);
    CHECK(parse_lsn("FFFFFFFF/FFFFFFFF") == UINT64_MAX);
}

TEST_CASE("parse_lsn refuses what is not an LSN", "[cluster]") {
    CHECK_FALSE(parse_lsn(""));
    CHECK_FALSE(parse_lsn("0"));
    CHECK_FALSE(parse_lsn("/0"));
    CHECK_FALSE(parse_lsn("0/"));
    CHECK_FALSE(parse_lsn("0/0/0"));
    CHECK_FALSE(parse_lsn("G/0"));
    CHECK_FALSE(parse_lsn(" 0/0"));
    CHECK_FALSE(parse_lsn("1FFFFFFFF/0"));
}

TEST_CASE("a running primary is marked *", "[cluster]") {
    auto v = derive_view(two_nodes[0], primary_probe("0/3000000"), two_nodes, 0x3000000);
    CHECK(v.role == "primary");
    CHECK(v.role_found == "primary");
    CHECK(v.status_text() == "* running");
    CHECK(v.upstream_name.empty());
    CHECK_FALSE(v.streaming);
    CHECK_FALSE(v.lag_bytes);
}

TEST_CASE("a streaming standby shows its upstream and lag", "[cluster]") {
    auto v = derive_view(two_nodes[1], standby_probe("0/2FFFF00"), two_nodes, 0x3000000);
    CHECK(v.role == "standby");
    CHECK(v.role_found == "standby");
    CHECK(v.status_text() == "  running");
    CHECK(v.upstream_name == "n1");
    CHECK(v.streaming == true);
    CHECK(v.lag_bytes == 0x100);
}

TEST_CASE("a standby without a WAL receiver is not streaming", "[cluster]") {
    Probe p = standby_probe("0/3000000");
    p.receiver_status.reset();
    auto v = derive_view(two_nodes[1], p, two_nodes, 0x3000000);
    CHECK(v.streaming == false);
    CHECK(v.lag_bytes == 0);
}

TEST_CASE("a standby ahead of the sampled primary position has no lag", "[cluster]") {
    auto v = derive_view(two_nodes[1], standby_probe("0/3000100"), two_nodes, 0x3000000);
    CHECK(v.lag_bytes == 0);
}

TEST_CASE("a standby's lag is unknown without a primary position", "[cluster]") {
    auto v = derive_view(two_nodes[1], standby_probe("0/3000000"), two_nodes, std::nullopt);
    CHECK_FALSE(v.lag_bytes);
}

TEST_CASE("a configured primary found in recovery is marked !", "[cluster]") {
    auto v = derive_view(two_nodes[0], standby_probe("0/3000000"), two_nodes, std::nullopt);
    CHECK(v.role == "primary");
    CHECK(v.role_found == "standby");
    CHECK(v.status_text() == "! running as standby");
}

TEST_CASE("a configured standby found writable is marked !", "[cluster]") {
    auto v = derive_view(two_nodes[1], primary_probe("0/3000000"), two_nodes, 0x3000000);
    CHECK(v.role_found == "primary");
    CHECK(v.status_text() == "! running as primary");
    CHECK_FALSE(v.streaming);
    CHECK_FALSE(v.lag_bytes);
}

TEST_CASE("an unreachable node is marked ?", "[cluster]") {
    auto v = derive_view(two_nodes[1], unreachable_probe(), two_nodes, 0x3000000);
    CHECK(v.role == "standby");
    CHECK(v.role_found == "unreachable");
    CHECK(v.status_text() == "? unreachable");
    CHECK(v.upstream_name == "n1");
    CHECK_FALSE(v.streaming);
    CHECK_FALSE(v.lag_bytes);
}

TEST_CASE("a node that answers but refuses us is running, its role unknown", "[cluster]") {
    Probe p = unreachable_probe();
    p.failure = ConnectFailure::PasswordRefused;
    auto v = derive_view(two_nodes[0], p, two_nodes, std::nullopt);
    CHECK(v.role_found == "unknown");
    CHECK(v.status_text() == "? running, password refused");
    p.failure = ConnectFailure::TooManyClients;
    CHECK(derive_view(two_nodes[1], p, two_nodes, std::nullopt).status == "running, too many clients");
    // Nothing listening is still unreachable.
    p.failure = ConnectFailure::Refused;
    CHECK(derive_view(two_nodes[1], p, two_nodes, std::nullopt).status_text() == "? unreachable");
}

TEST_CASE("inactive nodes", "[cluster]") {
    Node old_primary = node(3, "n3", "primary", std::nullopt, false);
    SECTION("not reachable: marked -") {
        auto v = derive_view(old_primary, unreachable_probe(), two_nodes, std::nullopt);
        CHECK(v.role == "inactive primary");
        CHECK(v.role_found == "unreachable");
        CHECK(v.status_text() == "- inactive");
    }
    SECTION("running anyway: marked !") {
        auto v = derive_view(old_primary, primary_probe("0/1"), two_nodes, std::nullopt);
        CHECK(v.status_text() == "! running");
    }
    SECTION("running but fenced by repmgrd: read-only") {
        Probe fenced = primary_probe("0/1");
        fenced.read_only = true;
        auto v = derive_view(old_primary, fenced, two_nodes, std::nullopt);
        CHECK(v.role_found == "primary");
        CHECK(v.status_text() == "! running, read-only");
    }
}

TEST_CASE("an upstream that is not registered is named by its id", "[cluster]") {
    auto v = derive_view(node(4, "n4", "standby", 9), standby_probe("0/1"), two_nodes, 1);
    CHECK(v.upstream_name == "node 9");
}

TEST_CASE("primary_lsn_for picks the writable primary", "[cluster]") {
    std::vector<Node> nodes = {node(1, "n1", "primary"), node(2, "n2", "standby", 1),
                               node(3, "n3", "standby", 1)};
    SECTION("the one writable node") {
        std::vector<Probe> probes = {primary_probe("0/10"), standby_probe("0/8"),
                                     unreachable_probe()};
        CHECK(primary_lsn_for(nodes[1], nodes, probes) == 0x10u);
    }
    SECTION("none reachable") {
        std::vector<Probe> probes = {unreachable_probe(), standby_probe("0/8"),
                                     standby_probe("0/8")};
        CHECK_FALSE(primary_lsn_for(nodes[1], nodes, probes));
    }
    SECTION("split brain: the upstream's, else none") {
        std::vector<Probe> probes = {primary_probe("0/10"), standby_probe("0/8"),
                                     primary_probe("0/20")};
        CHECK(primary_lsn_for(nodes[1], nodes, probes) == 0x10u);
        Node orphan = node(5, "n5", "standby");
        CHECK_FALSE(primary_lsn_for(orphan, nodes, probes));
    }
    SECTION("a read-only (fenced) old primary is not the one writable node") {
        Probe fenced = primary_probe("0/20");
        fenced.read_only = true;
        std::vector<Probe> probes = {primary_probe("0/10"), standby_probe("0/8"), fenced};
        Node orphan = node(5, "n5", "standby");
        CHECK(primary_lsn_for(orphan, nodes, probes) == 0x10u);
    }
}
