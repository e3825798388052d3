#include <catch2/catch.hpp>

#include "core/timeline.hpp"

using namespace pgrm;

TEST_CASE("LSNs print as PostgreSQL prints them", "[timeline]") {
    CHECK(format_lsn(0) == "0/0");
    CHECK(format_lsn((std::uint64_t{0x16} << 32) | 0xB374D848u) == "16/B374D848");
    CHECK(parse_lsn(format_lsn(0x5017058)) == 0x5017058u);
}

TEST_CASE("history files parse, comments and blank lines skipped", "[timeline]") {
    auto h = parse_timeline_history("1\t0/5017058\tno recovery target specified\n\n"
                                    "# comment\n2\t0/501A998\tno recovery target specified\n");
    REQUIRE(h.size() == 2);
    CHECK(h[0].parent_tli == 1);
    CHECK(h[0].switchpoint == 0x5017058u);
    CHECK(h[1].parent_tli == 2);
}

TEST_CASE("a node can follow when its WAL ends before the fork", "[timeline]") {
    std::vector<TimelineSwitch> h = {{1, 0x5000000}};
    CHECK(can_follow(1, 0x4000000, 2, 0x6000000, h).ok);
    CHECK(can_follow(1, 0x5000000, 2, 0x6000000, h).ok);
    auto past = can_follow(1, 0x5000001, 2, 0x6000000, h);
    CHECK_FALSE(past.ok);
    CHECK(past.reason.find("forked") != std::string::npos);
}

TEST_CASE("same timeline: behind follows, ahead does not", "[timeline]") {
    CHECK(can_follow(2, 100, 2, 200, {}).ok);
    CHECK_FALSE(can_follow(2, 300, 2, 200, {}).ok);
}

TEST_CASE("newer or unknown timelines cannot follow", "[timeline]") {
    CHECK_FALSE(can_follow(3, 1, 2, 200, {}).ok);
    auto unknown = can_follow(1, 1, 3, 200, {{2, 100}});
    CHECK_FALSE(unknown.ok);
    CHECK(unknown.reason.find("not in the primary's history") != std::string::npos);
}
