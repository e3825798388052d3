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
    return std::max<std::chrono::milliseconds>(kHealthCheckMin, remote_query(cfg) / 2);
}

std::chrono::seconds failover_window(const Config& cfg) {
    return std::chrono::seconds(cfg.reconnect_attempts * cfg.reconnect_interval + cfg.monitor_interval_secs);
}

std::chrono::seconds fence_after(const Config& cfg) {
    return std::chrono::seconds((cfg.reconnect_attempts - 1) * cfg.reconnect_interval + cfg.monitor_interval_secs);
}

std::chrono::seconds liveness(const Config& cfg) {
    return failover_window(cfg) + kDaemonLocalConnect +
           std::chrono::duration_cast<std::chrono::seconds>(kDaemonLocalQuery);
}

std::chrono::seconds daemon_alive(const Config& cfg) {
    return std::chrono::seconds(2 * (cfg.monitor_interval_secs + cfg.reconnect_interval));
}

std::string format(std::chrono::milliseconds d) {
    using namespace std::chrono;
    if (d >= hours(1) && d % hours(1) == 0ms) return std::to_string(duration_cast<hours>(d).count()) + " h";
    if (d >= minutes(5) && d % minutes(1) == 0ms)
        return std::to_string(duration_cast<minutes>(d).count()) + " min";
    if (d % seconds(1) == 0ms) return std::to_string(duration_cast<seconds>(d).count()) + " s";
    return std::to_string(d.count()) + " ms";
}

const std::vector<Documented>& documented() {
    static const std::vector<Documented> list = {
        {"connect", format(kConnect)},
        {"probe_connect", format(kProbeConnect)},
        {"probe_query", format(kProbeQuery)},
        {"server_control", format(kServerControl)},
        {"replay_settle", format(kReplaySettle)},
        {"register_replay", format(kRegisterReplay)},
        {"promotion_recorded", format(kPromotionRecorded)},
        {"daemon_answer", format(kDaemonAnswer)},
        {"switchover", format(kSwitchover)},
        {"switchover_catch_up", format(kSwitchoverCatchUp)},
        {"pause_takes_effect", format(kPauseTakesEffect)},
        {"helper_program", format(kHelperProgram)},
        {"event_notification", format(kEventNotification)},
        {"daemon_local_connect", format(kDaemonLocalConnect)},
        {"daemon_local_query", format(kDaemonLocalQuery)},
        {"daemon_child", format(kDaemonChild)},
        {"monitoring_prune", format(kMonitoringPrune)},
        {"http_head", format(kHttpHead)},
        {"http_io", format(kHttpIo)},
        {"http_connect", format(kHttpConnect)},
        {"http_query", format(kHttpQuery)},
        {"http_reuse", format(kHttpReuse)},
        // As the functions above compute them.
        {"remote_connect", "reconnect_interval, at most " + format(kDaemonLocalConnect)},
        {"remote_query", "reconnect_interval, at most " + format(kDaemonLocalQuery)},
        {"health_check", "half of remote_query, at least " + format(kHealthCheckMin)},
        {"failover_window", "reconnect_attempts * reconnect_interval + monitor_interval_secs"},
        {"fence_after", "(reconnect_attempts - 1) * reconnect_interval + monitor_interval_secs"},
        {"liveness", "failover_window + daemon_local_connect + daemon_local_query"},
        {"daemon_alive", "2 * (monitor_interval_secs + reconnect_interval)"},
    };
    return list;
}

}  // namespace pgrm::timeouts
