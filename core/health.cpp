#include "core/health.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/timeline.hpp"
#include "core/timeouts.hpp"

namespace pgrm {

namespace {

constexpr auto kQuery = timeouts::kProbeQuery;

// One row, whether or not a WAL receiver runs (the LEFT JOIN); functions that fail in
// the other role are guarded by CASE.
const char* const kSampleSql =
    "SELECT current_setting('server_version_num')::int, pg_catalog.pg_is_in_recovery(), "
    "       coalesce((SELECT s.setting = 'on' AND s.source = 'configuration file' "
    "                   FROM pg_catalog.pg_settings AS s "
    "                  WHERE s.name = 'default_transaction_read_only'), false), "
    "       CASE WHEN pg_catalog.pg_is_in_recovery() "
    "            THEN greatest((SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()), r.received_tli) "
    "            ELSE ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))"
    "                 ::bit(32)::int END, "
    "       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL "
    "            ELSE pg_catalog.pg_current_wal_lsn()::text END, "
    "       pg_catalog.pg_last_wal_receive_lsn()::text, "
    "       pg_catalog.pg_last_wal_replay_lsn()::text, "
    "       extract(epoch FROM clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp())::float8, "
    "       CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() "
    "            ELSE false END, "
    "       r.status, r.sender_host, r.sender_port "
    "  FROM (VALUES (1)) AS one "
    "  LEFT JOIN pg_catalog.pg_stat_wal_receiver AS r ON true";

const char* const kClientsSql =
    "SELECT coalesce(application_name, ''), coalesce(state, '') FROM pg_catalog.pg_stat_replication "
    "ORDER BY application_name";

const char* const kArchiveReadySql =
    "SELECT count(*) FROM pg_catalog.pg_ls_archive_statusdir() WHERE name LIKE '%.ready'";

const char* const kSlotsSql =
    "SELECT slot_name, slot_type, active FROM pg_catalog.pg_replication_slots ORDER BY slot_name";

const char* const kPrimaryLsnSql =
    "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL "
    "            ELSE pg_catalog.pg_current_wal_lsn()::text END";

}  // namespace

NodeSample sample_node(Connection& conn, std::chrono::milliseconds timeout) {
    Rows r = conn.exec(kSampleSql, {}, timeout);
    NodeSample s;
    s.version_num = static_cast<int>(r.get_int(0, 0));
    s.in_recovery = r.get_bool(0, 1);
    s.read_only = r.get_bool(0, 2);
    if (!r.is_null(0, 3)) s.timeline = static_cast<int>(r.get_int(0, 3));
    s.current_lsn = r.get_opt(0, 4);
    s.receive_lsn = r.get_opt(0, 5);
    s.replay_lsn = r.get_opt(0, 6);
    if (auto age = r.get_opt(0, 7)) s.replay_age_s = std::stod(*age);
    s.replay_paused = r.get_bool(0, 8);
    s.receiver_status = r.get_opt(0, 9);
    s.sender_host = r.get_opt(0, 10);
    if (!r.is_null(0, 11)) s.sender_port = static_cast<int>(r.get_int(0, 11));
    return s;
}

std::vector<ReplicationClient> replication_clients(Connection& conn) {
    Rows r = conn.exec(kClientsSql, {}, kQuery);
    std::vector<ReplicationClient> out;
    for (int i = 0; i < r.size(); ++i) out.push_back({r.get(i, 0), r.get(i, 1)});
    return out;
}

long long archive_ready_count(Connection& conn) { return conn.exec(kArchiveReadySql, {}, kQuery).get_int(0, 0); }

std::vector<SlotInfo> replication_slots(Connection& conn) {
    Rows r = conn.exec(kSlotsSql, {}, kQuery);
    std::vector<SlotInfo> out;
    for (int i = 0; i < r.size(); ++i) out.push_back({r.get(i, 0), r.get(i, 1), r.get_bool(i, 2)});
    return out;
}

std::optional<std::uint64_t> active_primary_lsn(const std::vector<Node>& nodes, int self_id,
                                               const timeouts::Probe& limits) {
    for (const Node& n : nodes) {
        if (n.type != "primary" || !n.active || n.id == self_id) continue;
        try {
            Connection primary = Connection::open(n.conninfo, ConnectOptions{.connect_timeout = limits.connect});
            if (auto lsn = primary.exec(kPrimaryLsnSql, {}, limits.query).get_opt(0, 0)) return parse_lsn(*lsn);
            log::info("primary node " + std::to_string(n.id) + " is in recovery: its WAL position is not the primary's");
        } catch (const Error& e) {
            log::info("primary node " + std::to_string(n.id) + " not asked for its WAL position: " + e.what());
        }
    }
    return std::nullopt;
}

}  // namespace pgrm
