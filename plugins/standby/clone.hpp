#pragma once

#include <string>
#include <vector>

namespace pgrm {

// What is known before cloning, gathered without changing anything.
struct CloneSituation {
    std::string target;              // the data directory to fill
    bool target_exists = false;
    bool target_empty = true;
    bool target_running = false;     // a postmaster runs on it
    bool force = false;
    // The target's files are an earlier state of the source's own database system,
    // and wal_log_hints or checksums let pg_rewind copy only what diverged.
    bool target_rewindable = false;
    std::string not_rewindable_because;  // for the plan, when it has data but is not
    std::string method;              // asked for: "pg_basebackup" or "rsync"
    bool source_local = false;       // the source's files are on this machine
    std::string source_host;
    std::string remote_user;         // -R, for rsync over ssh
};

// How to clone, and the steps a --dry-run shows.
struct ClonePlan {
    std::string method;              // "pg_basebackup", "rsync" or "pg_rewind"
    bool delta = false;              // over existing files, copying what changed
    std::vector<std::string> steps;
};

// Decides the method, or refuses with pgrm::Error: a running target always; a
// non-empty target without --force. --force over existing files means pg_rewind when
// the target is rewindable, else an rsync delta.
ClonePlan plan_clone(const CloneSituation& s);

// The ssh command rsync runs (its --rsh value): "ssh -o BatchMode=yes" and the words of
// ssh_options, each quoted the way rsync reads it when it holds a space.
std::string rsync_rsh(const std::string& ssh_options);

}  // namespace pgrm
