#include "plugins/daemon/metrics.hpp"

#include <cstdio>
#include <optional>

#include "core/timeline.hpp"
#include "plugins/daemon/verdicts.hpp"
#include "plugins/node/checks.hpp"

namespace pgrm::daemon {

namespace {

constexpr State kStates[] = {
    State::Starting,    State::LocalServerDown, State::Unregistered,        State::Standby,
    State::PrimaryLostConfirming, State::PrimaryLost, State::Paused,        State::Electing,
    State::Promoting,   State::FollowingNewPrimary, State::SwitchoverWait,  State::NeedsRejoin, State::Primary,
    State::Demoting,    State::Fenced,          State::Stopped,
};

// A label value as the exposition format quotes it.
std::string label_value(std::string_view v) {
    std::string out = "\"";
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out + "\"";
}

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

class Exposition {
public:
    Exposition(std::string_view cluster, int node_id)
        : labels_("cluster=" + label_value(cluster) + ",node_id=" + label_value(std::to_string(node_id))) {}

    // HELP and TYPE, once per metric, before its samples.
    void family(std::string_view name, std::string_view type, std::string_view help) {
        text_ += "# HELP " + std::string(name) + " " + std::string(help) + "\n";
        text_ += "# TYPE " + std::string(name) + " " + std::string(type) + "\n";
    }
    void sample(std::string_view name, double value, std::string_view extra = "") {
        text_ += std::string(name) + "{" + labels_ + (extra.empty() ? "" : "," + std::string(extra)) + "} " +
                 number(value) + "\n";
    }
    // A family with one sample, or none at all when the value is unknown.
    void one(std::string_view name, std::string_view type, std::string_view help, std::optional<double> value) {
        if (!value) return;
        family(name, type, help);
        sample(name, *value);
    }
    std::string text() const { return text_; }

private:
    std::string labels_;
    std::string text_;
};

std::optional<double> lsn_bytes(const std::optional<std::string>& lsn) {
    if (!lsn) return std::nullopt;
    auto v = parse_lsn(*lsn);
    return v ? std::optional<double>(static_cast<double>(*v)) : std::nullopt;
}

std::optional<double> unix_seconds(std::chrono::system_clock::time_point t) {
    if (t.time_since_epoch().count() == 0) return std::nullopt;
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

std::string render_metrics(const Snapshot& s, std::string_view cluster, int node_id, std::string_view version,
                           const Now& now) {
    Exposition m(cluster, node_id);
    m.one("pgrm_up", "gauge", "1: repmgrd runs and answers", 1);
    m.family("pgrm_build_info", "gauge", "repmgrd's version, as a label; always 1");
    m.sample("pgrm_build_info", 1, "version=" + label_value(version));
    m.family("pgrm_state", "gauge", "1 for repmgrd's current state (repmgrd(8), STATES), 0 for the others");
    for (State st : kStates) m.sample("pgrm_state", st == s.state ? 1 : 0, "state=" + label_value(state_name(st)));
    m.one("pgrm_loop_alive", "gauge", "1 while repmgrd's loop passes within its liveness bound (/liveness)",
          loop_alive(s, now) ? 1 : 0);
    m.one("pgrm_last_pass_timestamp_seconds", "gauge", "when repmgrd's last monitoring pass ended (unix time)",
          unix_seconds(s.last_pass));
    m.one("pgrm_passes_total", "counter", "monitoring passes repmgrd finished since it started (per-pass costs)",
          static_cast<double>(s.passes));
    m.one("pgrm_last_check_success_timestamp_seconds", "gauge",
          "when a pass last found this node's server answering all its queries (unix time)", unix_seconds(s.last_check));
    m.one("pgrm_failovers_total", "counter", "promotions of this node by this repmgrd since it started",
          static_cast<double>(s.failovers));
    m.one("pgrm_fences_total", "counter", "times this repmgrd fenced its primary since it started",
          static_cast<double>(s.fences));
    m.one("pgrm_paused", "gauge", "1 while failover is paused, as the last pass read it", s.paused ? 1 : 0);
    m.one("pgrm_server_up", "gauge", "1 when this node's server answered the last pass", s.local ? 1 : 0);
    if (s.local) {
        const NodeSample& l = *s.local;
        m.one("pgrm_primary", "gauge", "1 when this node's server is out of recovery", l.in_recovery ? 0 : 1);
        m.one("pgrm_writable_primary", "gauge", "1 when /primary answers 200: the writable, unfenced primary",
              writable_primary(s, now) ? 1 : 0);
        m.one("pgrm_read_only", "gauge", "1 when the server's configuration makes it read-only (a fence)",
              l.read_only ? 1 : 0);
        m.one("pgrm_timeline", "gauge", "the server's timeline", l.timeline);
        m.one("pgrm_wal_current_bytes", "gauge", "a primary's WAL write position (pg_current_wal_lsn), as bytes",
              lsn_bytes(l.current_lsn));
        m.one("pgrm_wal_receive_bytes", "gauge", "a standby's WAL received (pg_last_wal_receive_lsn), as bytes",
              lsn_bytes(l.receive_lsn));
        m.one("pgrm_wal_replay_bytes", "gauge", "a standby's WAL replayed (pg_last_wal_replay_lsn), as bytes",
              lsn_bytes(l.replay_lsn));
        if (l.in_recovery) {
            auto received = l.receive_lsn ? parse_lsn(*l.receive_lsn) : std::nullopt;
            auto replayed = l.replay_lsn ? parse_lsn(*l.replay_lsn) : std::nullopt;
            std::optional<double> replication, apply;
            // As the monitoring rows count them: not yet received, received not yet replayed.
            if (s.primary_lsn && received)
                replication = static_cast<double>(*s.primary_lsn > *received ? *s.primary_lsn - *received : 0);
            if (received && replayed) apply = static_cast<double>(*received > *replayed ? *received - *replayed : 0);
            m.one("pgrm_replication_lag_bytes", "gauge",
                  "a standby's WAL the primary has written and it has not received", replication);
            m.one("pgrm_apply_lag_bytes", "gauge", "a standby's WAL received and not yet replayed", apply);
            auto lag_bytes = replay_lag_bytes(s);
            m.one("pgrm_lag_bytes", "gauge", "a standby's distance from its primary in replay (/replica?lag=)",
                  lag_bytes ? std::optional<double>(static_cast<double>(*lag_bytes)) : std::nullopt);
            m.one("pgrm_apply_lag_seconds", "gauge",
                  "seconds since the last transaction a standby replayed was committed; 0 when it has replayed "
                  "everything",
                  node::replication_lag(l, s.primary_lsn).seconds);
            m.one("pgrm_replay_paused", "gauge", "1 while replay is paused (pg_wal_replay_pause)",
                  l.replay_paused ? 1 : 0);
            m.one("pgrm_streaming", "gauge", "1 while the WAL receiver streams",
                  l.receiver_status == "streaming" ? 1 : 0);
        }
    }
    return m.text();
}

}  // namespace pgrm::daemon
