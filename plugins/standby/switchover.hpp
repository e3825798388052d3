#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/metadata.hpp"

// standby switchover's checks, judged apart from gathering them so they are unit-tested.
namespace pgrm {

struct SwitchoverFacts {
    int candidate = 0;                          // this node
    bool candidate_in_recovery = false;
    std::optional<int> primary;                 // the active primary in the metadata
    bool primary_writable = false;              // it answered and accepts writes
    std::string primary_error;                  // why not, when it did not answer
    int schema_version = 0;                     // of the primary's metadata
    std::optional<int> upstream;                // the registered node this standby streams from
    std::optional<unsigned long long> lag;      // bytes: the primary's WAL end - received here
    unsigned long long max_lag = 0;
    std::optional<double> primary_daemon_age;   // seconds since its heartbeat
    std::optional<double> candidate_daemon_age; // seconds since its monitoring row
    double daemon_fresh = 0;                    // younger than this: alive
    std::optional<SwitchoverRequest> active;    // a switchover under way
    FailoverPause pause;                        // as the primary's metadata says
};

struct SwitchoverCheck {
    std::string name;     // "candidate streams from the primary"
    bool ok = false;
    std::string detail;   // what was found
};

// Every check, in order, each with what it found; all must hold.
std::vector<SwitchoverCheck> judge_switchover(const SwitchoverFacts& facts);

}  // namespace pgrm
