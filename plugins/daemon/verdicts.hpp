#pragma once

// What a daemon's snapshot says about its node, as the HTTP endpoint's health paths and
// its metrics both tell it: pure functions of the snapshot and the time.

#include <chrono>
#include <cstdint>
#include <optional>

#include "plugins/daemon/state.hpp"

namespace pgrm::daemon {

// The verdicts, as this daemon can tell them at now.
// The last pass (or the start, before any) is within the liveness bound.
bool loop_alive(const Snapshot& s, std::chrono::system_clock::time_point now);
bool writable_primary(const Snapshot& s, std::chrono::system_clock::time_point now);
bool streaming_standby(const Snapshot& s, std::chrono::system_clock::time_point now);
// A standby's distance in bytes from its primary's position to what it has replayed
// (what a reader sees); nullopt without a standby sample and its primary's position.
std::optional<std::uint64_t> replay_lag_bytes(const Snapshot& s);

}  // namespace pgrm::daemon
