#pragma once

#include <chrono>
#include <string>

#include "core/config.hpp"
#include "core/db.hpp"
#include "core/metadata.hpp"

// The old primary's part of a planned switchover (repmgr standby switchover runs on the
// candidate and asks for it through the metadata): its daemon stops the server cleanly,
// makes sure the candidate has replayed the shutdown checkpoint, makes the server a
// standby of the candidate, promotes the candidate and starts the server as its standby.
// Any failure before the promotion aborts: the server runs as the primary again.
namespace pgrm::daemon {

struct Demotion {
    enum class End {
        Demoted,   // this server is a standby of the candidate, which is the primary
        Aborted,   // this server is the primary again (or never stopped)
        Failed,    // neither: message says what state each node is in
    };
    End end = End::Aborted;
    std::string message;
};

// Where the other nodes are reached from, and for how long.
struct DemotionLimits {
    ConnectOptions connect;                   // to the candidate
    std::chrono::milliseconds query{5000};    // each query to the candidate
};

// Carries out request on this node (its primary). local is the daemon's connection to its
// server; it is closed (the server stops) and reopened when the server runs again.
Demotion demote_for_switchover(const Config& cfg, std::optional<Connection>& local,
                               const SwitchoverRequest& request, const DemotionLimits& limits);

}  // namespace pgrm::daemon
