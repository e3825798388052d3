#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

// A primary's lease on taking writes (repmgrd(8), FENCE BEFORE PROMOTE), on the monotonic
// clock. Each probe round that reaches a majority renews it until the round's start plus
// fence_after; when it runs out, a thread of its own fences the server, so that nothing
// the daemon's loop waits on (a slow server, a node that does not answer, a command it
// runs) can put the fence off. A lease that ran out stays spent: a later round cannot
// undo a fence the standbys count on. A fence that failed (the server did not answer) is
// tried again every retry until one succeeds: a frozen server is fenced as it thaws.
namespace pgrm::daemon {

class FenceLease {
public:
    // Fences this node's server; returns what failed (empty: fenced). Runs on the
    // lease's thread.
    using Fence = std::function<std::string()>;
    struct Ran {
        std::chrono::steady_clock::time_point at;  // when the last attempt ended
        std::string failed;                        // empty: fenced
    };

    explicit FenceLease(std::chrono::milliseconds retry);
    ~FenceLease();
    FenceLease(const FenceLease&) = delete;
    FenceLease& operator=(const FenceLease&) = delete;

    // Fences at until unless renewed before; the fence to run (the settings in use).
    // Ignored once spent.
    void renew(std::chrono::steady_clock::time_point until, Fence fence);
    // No fence from now on (no longer a primary, failover paused or manual), and forget
    // any that ran; waits for one in progress to end.
    void cancel();
    // The last fence attempt since the lease ran out; nullopt while it has not.
    std::optional<Ran> ran() const;
    // Renewed since it was last cancelled, and not fenced yet (one that failed is tried
    // again: still armed).
    bool armed() const;

private:
    void run();

    const std::chrono::milliseconds retry_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    bool armed_ = false;
    bool spent_ = false;
    bool running_ = false;
    bool stopping_ = false;
    std::chrono::steady_clock::time_point until_{};
    Fence fence_;
    std::optional<Ran> ran_;
    std::thread thread_;  // last: starts once the rest is set
};

// Until when a primary's probe round renews the lease before it asks the other nodes:
// the last majority's start plus fence_after. When that is past and the lease is not
// armed (failover was paused, and the count went on through the pause and through the
// passes that could not reach this node's own server: a restart, say), the round decides
// instead: a majority renews it, none fences it, at the latest at the round's bound
// (probe_round). An armed lease is never put off: it has run out, or runs out, as it
// was.
std::chrono::steady_clock::time_point lease_until(std::chrono::steady_clock::time_point last_majority,
                                                  std::chrono::milliseconds fence_after,
                                                  std::chrono::steady_clock::time_point round,
                                                  std::chrono::milliseconds probe_round, bool armed);

}  // namespace pgrm::daemon
