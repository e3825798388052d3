#include "core/timeouts.hpp"

#include <algorithm>

namespace pgrm::timeouts {

std::chrono::milliseconds remote_connect(const Config& cfg) {
    return std::min<std::chrono::milliseconds>(kDaemonLocalConnect, std::chrono::seconds(cfg.reconnect_interval));
}

std::chrono::milliseconds remote_query(const Config& cfg) {
    return std::min<std::chrono::milliseconds>(kDaemonLocalQuery, std::chrono::seconds(cfg.reconnect_interval));
}

std::chrono::milliseconds health_check(const Config& cfg) {
    return std::max<std::chrono::milliseconds>(250ms, remote_query(cfg) / 2);
}

std::chrono::seconds failover_window(const Config& cfg) {
    return std::chrono::seconds(cfg.reconnect_attempts * cfg.reconnect_interval + cfg.monitor_interval_secs);
}

std::chrono::seconds fence_after(const Config& cfg) {
    return std::chrono::seconds((cfg.reconnect_attempts - 1) * cfg.reconnect_interval + cfg.monitor_interval_secs);
}

}  // namespace pgrm::timeouts
