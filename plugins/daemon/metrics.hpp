#pragma once

// repmgrd's /metrics: Prometheus text exposition (format 0.0.4) of the daemon's state,
// rendered from a snapshot alone (a pure function, unit tested on its text).

#include <chrono>
#include <string>
#include <string_view>

#include "plugins/daemon/state.hpp"
#include "plugins/daemon/verdicts.hpp"

namespace pgrm::daemon {

// Every series carries cluster and node_id. A value the last pass did not find (a
// standby has no current WAL position, a down server none at all) is left out rather
// than made up.
std::string render_metrics(const Snapshot& s, std::string_view cluster, int node_id, std::string_view version,
                           const Now& now);

}  // namespace pgrm::daemon
