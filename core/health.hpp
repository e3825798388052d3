#pragma once

// What node status and node check ask a server: every query they make is here, each
// one round trip, with the probe timeout (timeouts::kProbeQuery) so a hung server
// cannot hold a monitoring system's check.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/db.hpp"
#include "core/metadata.hpp"
#include "core/timeouts.hpp"

namespace pgrm {

// The server's own state.
struct NodeSample {
    int version_num = 0;
    bool in_recovery = false;
    bool read_only = false;                       // its configuration sets default_transaction_read_only (a fence)
    int timeline = 0;                             // written (primary), else the newer of checkpoint and receiver
    std::optional<std::string> current_lsn;       // primary: pg_current_wal_lsn()
    std::optional<std::string> receive_lsn;       // standby: pg_last_wal_receive_lsn()
    std::optional<std::string> replay_lsn;        // standby: pg_last_wal_replay_lsn()
    std::optional<double> replay_age_s;           // since the last replayed transaction committed
    bool replay_paused = false;                   // pg_wal_replay_pause() in effect
    std::optional<std::string> receiver_status;   // pg_stat_wal_receiver; absent when none runs
    std::optional<std::string> sender_host;
    std::optional<int> sender_port;
};
NodeSample sample_node(Connection& conn, std::chrono::milliseconds timeout = timeouts::kProbeQuery);

// A standby attached to this server (pg_stat_replication).
struct ReplicationClient {
    std::string application_name;
    std::string state;                            // "streaming", "catchup", ...
};
std::vector<ReplicationClient> replication_clients(Connection& conn);

// .ready files in pg_wal/archive_status: WAL segments not archived yet. Needs
// pg_ls_archive_statusdir(), granted to superusers and pg_monitor.
long long archive_ready_count(Connection& conn);

// Every replication slot on the server.
struct SlotInfo {
    std::string name;
    std::string type;                             // "physical" or "logical"
    bool active = false;
};
std::vector<SlotInfo> replication_slots(Connection& conn);

// The WAL position of the active primary among nodes, when it is another node than
// self_id and answers within the probe timeouts; nullopt otherwise (logged at info).
std::optional<std::uint64_t> active_primary_lsn(const std::vector<Node>& nodes, int self_id,
                                               const timeouts::Probe& limits = timeouts::kCommandProbe);

}  // namespace pgrm
