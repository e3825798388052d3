#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgrm {

// "16/B374D848" as the 64-bit WAL position it names; nullopt unless it is "X/Y" in hex.
std::optional<std::uint64_t> parse_lsn(std::string_view text);
std::string format_lsn(std::uint64_t lsn);

// One line of a timeline history file: timeline parent_tli ended at switchpoint.
struct TimelineSwitch {
    int parent_tli = 0;
    std::uint64_t switchpoint = 0;
};
// The lines of "0000000N.history" ("1\t0/3000060\tno recovery target specified").
std::vector<TimelineSwitch> parse_timeline_history(const std::string& content);

// Whether a node whose WAL ends at (tli, lsn) can stream from a primary now on
// primary_tli at primary_lsn, given the primary's timeline history. When it cannot,
// reason says why in a user's words.
struct FollowVerdict {
    bool ok = false;
    std::string reason;
};
FollowVerdict can_follow(int tli, std::uint64_t lsn, int primary_tli, std::uint64_t primary_lsn,
                         const std::vector<TimelineSwitch>& history);

}  // namespace pgrm
