// The timeline history parser (core/timeline.cpp): 0000000N.history as the primary
// sends it, and the follow verdict built on it.
#include <cstddef>
#include <climits>
#include <cstdint>
#include <string>

#include "core/timeline.hpp"

using namespace pgrm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string content(reinterpret_cast<const char*>(data), size);
    const auto history = parse_timeline_history(content);
    for (const auto& sw : history) {
        // A switchpoint prints as PostgreSQL prints it and reads back the same.
        if (parse_lsn(format_lsn(sw.switchpoint)) != sw.switchpoint) __builtin_trap();
        can_follow(sw.parent_tli, sw.switchpoint, sw.parent_tli < INT_MAX ? sw.parent_tli + 1 : sw.parent_tli,
                   sw.switchpoint + 1, history);
        can_follow(sw.parent_tli, sw.switchpoint + 1, static_cast<int>(history.size()) + 1, 0, history);
    }
    parse_lsn(content);
    return 0;
}
