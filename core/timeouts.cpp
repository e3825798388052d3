#include "core/timeouts.hpp"

#include <algorithm>

#include "core/error.hpp"

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

std::chrono::milliseconds etcd_call(const Config& cfg) {
    return static_cast<long long>(std::max<std::size_t>(cfg.etcd_endpoints.size(), 1)) * (kEtcdConnect + kEtcdRequest);
}

std::chrono::seconds etcd_lease_ttl(const Config& cfg) {
    if (cfg.etcd_lease_ttl > 0) return std::chrono::seconds(cfg.etcd_lease_ttl);
    const long long ppm = kClockDriftPpm, million = 1'000'000;
    long long ms = (fence_after(cfg) + fence_action() + kFenceMargin).count();
    long long den = (million - ppm) * 1000;
    return std::chrono::seconds((ms * (million + ppm) + den - 1) / den);
}

std::chrono::milliseconds etcd_fence_after(std::chrono::seconds ttl) {
    const long long ppm = kClockDriftPpm, million = 1'000'000;
    long long ms = std::chrono::milliseconds(ttl).count() * (million - ppm) / (million + ppm);
    return std::chrono::milliseconds(ms) - fence_action() - kFenceMargin;
}

std::chrono::milliseconds etcd_fence_after(const Config& cfg) { return etcd_fence_after(etcd_lease_ttl(cfg)); }

void check_etcd_lease(const Config& cfg) {
    if (cfg.dcs != "etcd") return;
    const auto fence_at = etcd_fence_after(cfg);
    const auto least = std::chrono::seconds(cfg.monitor_interval_secs) + kEtcdConnect + kEtcdRequest;
    if (fence_at < least)
        throw Error(ExitCode::BadConfig,
                    cfg.path + ": etcd_lease_ttl = " + std::to_string(etcd_lease_ttl(cfg).count()) +
                        " s is too short: a primary would fence itself " + format(fence_at) +
                        " after its last renewal (etcd_fence_after), less than a pass and one etcd request (" +
                        format(least) + ")");
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
        {"etcd_connect", format(kEtcdConnect)},
        {"etcd_request", format(kEtcdRequest)},
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
        {"etcd_call", "(etcd_connect + etcd_request) * the number of etcd_endpoints"},
        {"etcd_lease_ttl",
         "the setting, or (fence_after + fence_action + fence_margin) * (1 + clock_drift) / (1 - clock_drift) "
         "in whole seconds"},
        {"etcd_fence_after",
         "etcd_lease_ttl * (1 - clock_drift) / (1 + clock_drift) - fence_action - fence_margin"},
    };
    return list;
}

}  // namespace pgrm::timeouts
