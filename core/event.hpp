#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/config.hpp"
#include "core/metadata.hpp"

// Events: every change of a node's or the cluster's state is a row of the metadata's
// events table and a run of event_notification_command (repmgr.conf(5)). record_event
// is the one call that does both, from every command and from repmgrd.
namespace pgrm {

// Records the event: its row through meta, then its notification. meta is null when no
// metadata can be written now (a failover with the primary gone, the fence of an
// isolated primary: repmgrd keeps such rows until a primary takes them), and when the row
// was written with the change it records, in the same statement (record_promotion,
// remove_node, set_failover_paused): the notification runs all the same. When the row
// cannot be written the notification still runs, then the write's error is thrown.
void record_event(const Config& cfg, Metadata* meta, const NodeEvent& event);

// The argv event_notification_command runs for the event; nullopt when none is set or
// event_notifications leaves the event out. The details without secrets.
std::optional<std::vector<std::string>> notification_argv(const Config& cfg, const NodeEvent& event);

// %t: "2026-12-07T10:11:12.345Z", UTC.
std::string event_time(std::chrono::system_clock::time_point at);

// While one lives, notifications run on a thread of its own, one at a time in the order
// recorded, rather than in the caller: repmgrd's, whose loop must never wait on a
// notification (a failover held up by a hanging pager). Commands run theirs in place,
// each bounded by timeouts::kEventNotification; so do the commands repmgrd runs (standby
// promote, standby follow), which the daemon waits for anyway. At most kQueued wait; a
// further one drops the oldest, with a warning. Destroyed, it runs those still waiting
// (repmgrd_stopped among them), unless one of them times out: then the rest are dropped.
class BackgroundNotifications {
public:
    static constexpr std::size_t kQueued = 64;
    BackgroundNotifications();
    ~BackgroundNotifications();
    BackgroundNotifications(const BackgroundNotifications&) = delete;
    BackgroundNotifications& operator=(const BackgroundNotifications&) = delete;

    void post(std::vector<std::string> argv, std::string event);

private:
    struct Job {
        std::vector<std::string> argv;
        std::string event;
    };
    void work();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace pgrm
