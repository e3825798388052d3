#pragma once

#include <string>
#include <vector>

#include "core/rejoin.hpp"

namespace pgrm {

// What is known before cloning, gathered without changing anything.
struct CloneSituation {
    std::string target;              // the data directory to fill
    bool target_exists = false;
    bool target_empty = true;
    bool target_running = false;     // a postmaster runs on it
    bool force = false;
    RewindCheck rewind;              // judged when the target has data and is stopped
    std::string method;              // asked for: "pg_basebackup" or "rsync"
    RsyncSource source;              // where rsync would copy from
};

// How to clone, and the steps a --dry-run shows.
struct ClonePlan {
    std::string method;              // "pg_basebackup", "rsync" or "pg_rewind"
    bool delta = false;              // over existing files: a rejoin (core/rejoin)
    std::vector<std::string> steps;
};

// Decides the method, or refuses with pgrm::Error: a running target always; a
// non-empty target without --force. --force over existing files is a rejoin:
// pg_rewind when the target is rewindable, else an rsync delta.
ClonePlan plan_clone(const CloneSituation& s);

}  // namespace pgrm
