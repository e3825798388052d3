#include "plugins/daemon/notify.hpp"

#include <cstdint>

#include "pgrm_config.h"
#if PGRM_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace pgrm::daemon {

namespace {

// sd_notify without unsetting the environment: the commands repmgrd runs must not
// notify in its name, but NotifyAccess=main (the default) already ignores them.
void notify(const std::string& message) {
#if PGRM_HAVE_SYSTEMD
    ::sd_notify(0, message.c_str());
#else
    (void)message;
#endif
}

}  // namespace

std::string status_line(const Snapshot& snap) {
    std::string primary = snap.upstream                 ? "node " + std::to_string(*snap.upstream)
                          : snap.state == State::Primary ? std::string("this node")
                                                         : std::string("unknown");
    bool passed = snap.last_pass.time_since_epoch().count() != 0;
    return std::string(state_name(snap.state)) + "; primary: " + primary +
           "; last check: " + (passed ? iso_utc(snap.last_pass) : std::string("none yet"));
}

ServiceNotifier::ServiceNotifier() {
#if PGRM_HAVE_SYSTEMD
    std::uint64_t usec = 0;
    watchdog_ = ::sd_watchdog_enabled(0, &usec) > 0;
#endif
}

void ServiceNotifier::pass_done(const Snapshot& snap) {
    std::string message = (ready_sent_ ? "" : "READY=1\n") + std::string("STATUS=") + status_line(snap);
    if (watchdog_) message += "\nWATCHDOG=1";
    notify(message);
    ready_sent_ = true;
}

void ServiceNotifier::stopping() { notify("STOPPING=1\nSTATUS=stopping"); }

}  // namespace pgrm::daemon
