#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "core/exec.hpp"
#include "core/log.hpp"

// The pgrm commands repmgrd runs (standby register, promote, follow) and what it reads
// back from them: each runs with --json, so its outcome is its one JSON document (exit
// status and message), and its log lines on stderr go into the daemon's log, whatever
// the outcome.
namespace pgrm::daemon {

struct ChildOutcome {
    bool ok = false;
    std::string message;  // the summary; on failure the error, with its detail
};

// From the run of a pgrm command with --json: ok when it exited 0 and its document says
// so; a run that left no document (killed, timed out, crashed) is described instead.
ChildOutcome read_outcome(const ExecResult& run);

// One line the command logged, "[2026-11-26 09:10:11.123] [WARNING] text", as its level
// and text; a line of another shape is kept whole, at level notice.
std::pair<log::Level, std::string> read_log_line(std::string_view line);

}  // namespace pgrm::daemon
