#include "core/timeline.hpp"

#include <charconv>
#include <cstdio>
#include <sstream>

namespace pgrm {

std::optional<std::uint64_t> parse_lsn(std::string_view text) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto half = [](std::string_view part) -> std::optional<std::uint64_t> {
        std::uint64_t v = 0;
        auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v, 16);
        if (part.empty() || part.size() > 8 || ec != std::errc() || end != part.data() + part.size())
            return std::nullopt;
        return v;
    };
    auto hi = half(text.substr(0, slash));
    auto lo = half(text.substr(slash + 1));
    if (!hi || !lo) return std::nullopt;
    return (*hi << 32) | *lo;
}

std::string format_lsn(std::uint64_t lsn) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                  static_cast<unsigned>(lsn & 0xFFFFFFFFu));
    return buf;
}

std::vector<TimelineSwitch> parse_timeline_history(const std::string& content) {
    std::vector<TimelineSwitch> out;
    std::istringstream in(content);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        int tli = 0;
        std::string lsn;
        if (line.empty() || line[0] == '#' || !(fields >> tli >> lsn)) continue;
        if (auto at = parse_lsn(lsn)) out.push_back({tli, *at});
    }
    return out;
}

FollowVerdict can_follow(int tli, std::uint64_t lsn, int primary_tli, std::uint64_t primary_lsn,
                         const std::vector<TimelineSwitch>& history) {
    auto where = "timeline " + std::to_string(tli) + " at " + format_lsn(lsn);
    if (tli == primary_tli) {
        if (lsn <= primary_lsn) return {true, ""};
        return {false, "this node is ahead of the primary on the same timeline (" + where +
                           ", primary at " + format_lsn(primary_lsn) + ")"};
    }
    if (tli > primary_tli)
        return {false, "this node is on a newer timeline (" + where + ") than the primary (timeline " +
                           std::to_string(primary_tli) + ")"};
    for (const auto& sw : history) {
        if (sw.parent_tli != tli) continue;
        if (lsn <= sw.switchpoint) return {true, ""};
        return {false, "this node has WAL past the point where the primary's timeline forked (" +
                           where + ", fork at " + format_lsn(sw.switchpoint) + ")"};
    }
    return {false, "timeline " + std::to_string(tli) + " is not in the primary's history"};
}

}  // namespace pgrm
