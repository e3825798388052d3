#pragma once

// What a daemon's snapshot says about its node, as the HTTP endpoint's health paths and
// its metrics both tell it: pure functions of the snapshot and the time.

#include <chrono>
#include <cstdint>
#include <optional>

#include "plugins/daemon/state.hpp"

namespace pgrm::daemon {

// The moment a verdict is given: the wall clock for the times answers show, the steady
// clock for ages.
struct Now {
    std::chrono::system_clock::time_point wall;
    std::chrono::steady_clock::time_point steady;
    static Now current() { return {std::chrono::system_clock::now(), std::chrono::steady_clock::now()}; }
};

// The verdicts, as this daemon can tell them at now.
// The last pass (or the start, before any) is within the liveness bound, or a step that
// takes longer (a command it runs) is within its own.
bool loop_alive(const Snapshot& s, const Now& now);
bool writable_primary(const Snapshot& s, const Now& now);
bool streaming_standby(const Snapshot& s, const Now& now);
// A standby's distance in bytes from its primary's position to what it has replayed
// (what a reader sees); nullopt without a standby sample and its primary's position.
std::optional<std::uint64_t> replay_lag_bytes(const Snapshot& s);

}  // namespace pgrm::daemon
