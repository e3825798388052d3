#pragma once

// service status: the pure part, what is known of one node's repmgrd, apart from asking.

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/metadata.hpp"

namespace pgrm::service {

// What was found out about one node's repmgrd.
struct DaemonFacts {
    // This node's: asked through its socket (only a repmgrd on this host can be).
    bool local = false;
    bool answered = false;             // a repmgrd holds the socket and answered
    nlohmann::json state;              // its state line (an object), when it sent one
    // Seconds since its last record in the metadata: a primary's heartbeat, a standby's
    // monitoring row (written each pass its primary answers); nullopt: never.
    std::optional<double> record_age;
    // The node's own metadata's pause row, as its repmgrd reads it; nullopt when the
    // node could not be asked, or its schema predates the pause.
    std::optional<FailoverPause> pause;
};

// One row of service status.
struct DaemonView {
    std::optional<bool> running;       // nullopt: not known from here
    std::string running_text;          // "running", "not running", "unknown"
    std::optional<long long> pid;      // known for this node's repmgrd only
    std::string state;                 // its state (this node's), else empty
    std::optional<bool> paused;        // whether it counts failover as paused
    bool pause_overridden = false;     // told to go on despite the pause
    std::string paused_text;           // "yes", "no", "no (overridden)", "n/a"
    std::optional<double> upstream_last_seen;  // a standby's, seconds
    std::string upstream_last_seen_text;       // "3 second(s) ago", "n/a"
    std::string note;                  // why running is unknown, for a line below the table
};

// The row for node from facts; alive is timeouts::daemon_alive: a record younger than
// that means its repmgrd runs. An older one says nothing (a standby whose primary is down
// records nothing), so another node's repmgrd is then unknown, never "not running".
DaemonView derive_daemon_view(const Node& node, const DaemonFacts& facts, std::chrono::seconds alive);

}  // namespace pgrm::service
