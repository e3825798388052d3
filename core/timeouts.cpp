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

std::chrono::milliseconds probe_round(const Config& cfg) { return remote_connect(cfg) + 2 * remote_query(cfg); }

std::chrono::milliseconds fence_after(const Config& cfg) {
    return std::chrono::seconds(std::max(cfg.reconnect_attempts - 1, 1) * cfg.reconnect_interval +
                                cfg.monitor_interval_secs) +
           probe_round(cfg);
}

std::chrono::milliseconds fence_action() { return kFenceConnect + 3 * kFenceQuery; }

std::chrono::milliseconds check_bound(const Config& cfg) { return remote_connect(cfg) + remote_query(cfg); }

std::chrono::milliseconds promote_after(const Config& cfg) {
    // ((fence_after + fence_action + check_bound) / (1 - d) + fence_margin) * (1 + d), in
    // whole milliseconds rounded up.
    const long long ppm = kClockDriftPpm, million = 1'000'000;
    auto up = [](long long num, long long den) { return (num + den - 1) / den; };
    long long bounds = (fence_after(cfg) + fence_action() + check_bound(cfg)).count();
    long long wait = up(bounds * million, million - ppm) + kFenceMargin.count();
    return std::chrono::milliseconds(up(wait * (million + ppm), million));
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
        {"fence_connect", format(kFenceConnect)},
        {"fence_query", format(kFenceQuery)},
        {"fence_margin", format(kFenceMargin)},
        {"clock_drift", std::to_string(kClockDriftPpm) + " ppm"},
        // As the functions above compute them.
        {"remote_connect", "reconnect_interval, at most " + format(kDaemonLocalConnect)},
        {"remote_query", "reconnect_interval, at most " + format(kDaemonLocalQuery)},
        {"health_check", "half of remote_query, at least " + format(kHealthCheckMin)},
        {"failover_window", "reconnect_attempts * reconnect_interval + monitor_interval_secs"},
        {"probe_round", "remote_connect + 2 * remote_query"},
        {"fence_after",
         "max(reconnect_attempts - 1, 1) * reconnect_interval + monitor_interval_secs + probe_round"},
        {"fence_action", "fence_connect + 3 * fence_query: " + format(fence_action())},
        {"check_bound", "remote_connect + remote_query"},
        {"promote_after",
         "((fence_after + fence_action + check_bound) / (1 - clock_drift) + fence_margin) * (1 + clock_drift)"},
        {"liveness", "failover_window + daemon_local_connect + daemon_local_query"},
        {"daemon_alive", "2 * (monitor_interval_secs + reconnect_interval)"},
    };
    return list;
}

}  // namespace pgrm::timeouts
