#pragma once

// node status as one function, which repmgrd's HTTP endpoint (/node) runs too.

#include <functional>

#include "core/config.hpp"
#include "core/daemon_socket.hpp"
#include "core/result.hpp"
#include "core/timeouts.hpp"

namespace pgrm::node {

// The command's result: this node's server, its record and its daemon (ask: the
// daemon's answer, from its socket, or from the daemon itself), each connection and
// query within limits. Throws when the node's server cannot be reached.
Result node_status(const Config& cfg, timeouts::Probe limits, const std::function<DaemonReply()>& ask);

}  // namespace pgrm::node
