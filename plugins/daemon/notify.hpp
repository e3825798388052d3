#pragma once

#include <string>

#include "plugins/daemon/state.hpp"

// repmgrd under systemd (Type=notify): READY=1 once its first pass is done, a STATUS= line
// every pass, and WATCHDOG=1 every pass when the unit sets WatchdogSec. The only caller of
// libsystemd's sd_notify; without libsystemd at build time (meson -Dsystemd=disabled), and
// outside systemd (no NOTIFY_SOCKET), it sends nothing.
namespace pgrm::daemon {

// "standby; primary: node 1; last check: 2026-12-07T02:51:00Z": what systemctl status
// shows of the daemon.
std::string status_line(const Snapshot& snap);

class ServiceNotifier {
public:
    ServiceNotifier();
    // After each pass of the monitor's loop (Snapshot::last_pass set).
    void pass_done(const Snapshot& snap);
    // The daemon is about to exit: systemd is not to count a watchdog miss meanwhile.
    void stopping();

private:
    bool ready_sent_ = false;
    bool watchdog_ = false;   // WATCHDOG_USEC is set, for this process (WATCHDOG_PID)
};

}  // namespace pgrm::daemon
