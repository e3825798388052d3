#include <catch2/catch.hpp>

#include "core/unregister.hpp"

using namespace pgrm;

namespace {

Node node(int id, const std::string& type, bool active) {
    Node n;
    n.id = id;
    n.name = "node" + std::to_string(id);
    n.type = type;
    n.active = active;
    return n;
}

UnregisterSituation asking(const std::string& type, std::optional<Node> target, int primary_id = 1) {
    UnregisterSituation s;
    s.type = type;
    s.node_id = target ? target->id : 9;
    s.target = std::move(target);
    s.primary_id = primary_id;
    s.target_writable = false;
    return s;
}

std::string refusal(const UnregisterSituation& s) {
    auto e = unregister_refusal(s);
    if (!e) return "";
    CHECK(e->code() == ExitCode::BadConfig);
    return e->what();
}

}  // namespace

TEST_CASE("a registered standby that takes no writes may be unregistered", "[unregister]") {
    CHECK(refusal(asking("standby", node(2, "standby", true))).empty());
    CHECK(refusal(asking("standby", node(2, "standby", false))).empty());
    auto gone = asking("standby", node(3, "standby", true));
    gone.target_writable.reset();  // gone for good: unreachable
    CHECK(refusal(gone).empty());
}

TEST_CASE("an unregistered node is refused, naming it", "[unregister]") {
    CHECK(refusal(asking("standby", std::nullopt)) == "node 9 is not registered");
    CHECK(refusal(asking("primary", std::nullopt)) == "node 9 is not registered");
}

TEST_CASE("standby unregister refuses a primary, master unregister a standby", "[unregister]") {
    CHECK(refusal(asking("standby", node(1, "primary", true))) == "node 1 (\"node1\") is a primary, not a standby");
    CHECK(refusal(asking("standby", node(4, "primary", false))) == "node 4 (\"node4\") is a primary, not a standby");
    CHECK(refusal(asking("primary", node(2, "standby", true))) == "node 2 (\"node2\") is a standby, not a primary");
}

TEST_CASE("master unregister takes an inactive former primary only", "[unregister]") {
    CHECK(refusal(asking("primary", node(1, "primary", true), 1)) == "node 1 (\"node1\") is the current primary");
    // Even when its record says inactive, the primary written to is the current one.
    CHECK(refusal(asking("primary", node(1, "primary", false), 1)) == "node 1 (\"node1\") is the current primary");
    CHECK(refusal(asking("primary", node(4, "primary", true), 1)) ==
          "node 4 (\"node4\") is registered as an active primary");
    CHECK(refusal(asking("primary", node(4, "primary", false), 1)).empty());
}

TEST_CASE("a node whose server accepts writes is never unregistered", "[unregister]") {
    auto former = asking("primary", node(4, "primary", false), 1);
    former.target_writable = true;
    CHECK(refusal(former) == "node 4 (\"node4\") is running and accepts writes");
    auto promoted = asking("standby", node(2, "standby", true), 1);
    promoted.target_writable = true;
    CHECK(refusal(promoted) == "node 2 (\"node2\") is running and accepts writes");
}
