#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/db.hpp"
#include "core/exit_code.hpp"
#include "plugins/daemon/child.hpp"

namespace pgrm::daemon {

// Set from signal handlers only; the loop acts on them.
struct Signals {
    std::atomic<bool> stop{false};
    std::atomic<bool> reload{false};
};

// repmgrd's loop: on a standby, lag monitoring, failure detection and failover; on the
// primary, liveness, quorum and fencing. Every SQL statement and program it runs is
// named at the top of monitor.cpp.
class Monitor {
public:
    // verbose: --verbose was given, which a reload must not forget.
    Monitor(Config config, std::string self_exe, Signals& signals, bool verbose);
    // Runs until asked to stop; the exit code is ERR_PROMOTED when this standby was
    // promoted from outside with failover = manual, as repmgr 1.0's daemon exited.
    ExitCode run();

private:
    void reload_config();
    void standby_pass();
    void primary_pass();
    bool primary_answers(std::chrono::milliseconds timeout);
    void record_monitoring();
    void failover();
    void fence(const std::string& why);
    ChildOutcome run_self(const std::vector<std::string>& args, const std::string& override_command);
    // Sleeps up to duration, waking at once on SIGTERM/SIGINT or when the primary's
    // connection closes (a killed primary's backends hang up right away).
    void wait(std::chrono::milliseconds duration);
    ConnectOptions quick_connect() const;
    std::chrono::milliseconds remote_timeout() const;

    Config cfg_;
    std::string self_exe_;
    Signals& signals_;
    bool verbose_;
    std::optional<Connection> local_;
    std::optional<Connection> primary_;
    // The primary's links to the other nodes, kept between passes.
    struct NodeLink {
        std::string conninfo;
        std::optional<Connection> conn;
    };
    std::map<int, NodeLink> node_links_;
    std::optional<int> primary_id_;
    bool registered_ = false;
    bool primary_lost_ = false;
    bool was_primary_ = false;
    bool promoted_by_us_ = false;
    bool fenced_ = false;
    bool schema_current_ = false;
    bool manual_notice_given_ = false;
    std::string local_error_;  // the last failure to reach the local server, logged once
    // When this primary last saw a majority (the start of that pass).
    std::chrono::steady_clock::time_point last_majority_{};
    std::chrono::steady_clock::time_point last_prune_{};
};

}  // namespace pgrm::daemon
