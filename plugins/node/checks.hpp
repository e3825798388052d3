#pragma once

// node check: what each check's findings mean (pure, unit-tested), apart from asking the
// servers (core/health), and how results are written for Nagios.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/daemon_socket.hpp"
#include "core/health.hpp"
#include "core/metadata.hpp"
#include "core/server.hpp"

namespace pgrm::node {

// A Nagios plugin's states, by the exit code each has.
enum class Status { Ok = 0, Warning = 1, Critical = 2, Unknown = 3 };
std::string_view status_name(Status status);  // "OK", "WARNING", "CRITICAL", "UNKNOWN"
// The one to report for several: CRITICAL, then UNKNOWN, then WARNING, then OK.
Status worse(Status a, Status b);

// One performance datum: 'label'=value[uom];[warning];[critical].
struct Perf {
    std::string label;
    double value = 0;
    std::string uom;  // "s", "B", or "" for a count
    std::optional<double> warning;
    std::optional<double> critical;
};

struct CheckResult {
    std::string check;  // "role", "replication_lag", ...
    Status status = Status::Unknown;
    std::string text;   // one line, for people
    std::vector<Perf> perf;
};

// The checks, in the order node check runs them.
const std::vector<std::string>& check_names();
// Whether --warning/--critical apply to the check, and their defaults.
struct Thresholds {
    double warning = 0;
    double critical = 0;
};
std::optional<Thresholds> default_thresholds(const std::string& check);
// A threshold as given on the command line: a number >= 0; nullopt when it is not one.
std::optional<double> parse_threshold(std::string_view text);

// A check that could not be made: UNKNOWN, saying why.
CheckResult unknown(const std::string& check, const std::string& why);

// --role: the server's role against this node's record. A primary must be the active
// primary and writable; a standby in recovery; anything else is CRITICAL, except what
// only needs tidying (a fenced former primary, an inactive standby): WARNING.
CheckResult judge_role(int node_id, const std::optional<Node>& registered, bool in_recovery, bool read_only);

// A standby's lag behind the primary: bytes from the primary's WAL position to its
// replay position; seconds since the last transaction it replayed committed, or 0 when
// it has replayed everything the primary has (without the primary: everything it
// received while streaming). primary_lsn was read before the sample.
struct Lag {
    std::optional<long long> bytes;
    std::optional<double> seconds;
};
Lag replication_lag(const NodeSample& sample, std::optional<std::uint64_t> primary_lsn);

// --replication-lag: thresholds in seconds. A primary has none: OK.
CheckResult judge_replication_lag(const NodeSample& sample, const Lag& lag, const Thresholds& t);

// --downstream: every active standby registered with this node as its upstream is
// attached (streaming or catching up, matched by application_name = node name).
CheckResult judge_downstream(int node_id, const std::vector<Node>& nodes, const std::vector<ReplicationClient>& clients);

// --upstream: a standby streams from the node its record names. streaming_from is the
// registered node at the WAL receiver's sender, when it is one.
CheckResult judge_upstream(const NodeSample& sample, const std::optional<Node>& registered,
                           const std::vector<Node>& nodes, std::optional<int> streaming_from);

// --archive-ready: thresholds in files waiting to be archived.
CheckResult judge_archive_ready(long long ready, const Thresholds& t);

// --slots: no replication slot is inactive (each holds WAL back for a client that left).
CheckResult judge_slots(const std::vector<SlotInfo>& slots);

// --daemon: a repmgrd runs for this node and answers; WARNING while it counts failover as
// paused.
CheckResult judge_daemon(int node_id, const DaemonReply& reply);

// --server-control: how pgrm starts and stops this server; WARNING when its configuration
// lives outside the data directory and only pg_ctl is known.
CheckResult judge_server_control(const ServerControl& control);
// "Debian cluster 15/main (/etc/postgresql/15/main)", "service_start_command", "pg_ctl"
std::string describe(const ServerControl& control);
nlohmann::json to_json(const ServerControl& control);

// Nagios: "PGRM_REPLICATION_LAG WARNING: text | lag=12s;10;60", for one check; for
// several, a first line "PGRM_NODE <worst>: ..." with every datum, then one line each.
std::string nagios_output(const std::vector<CheckResult>& results);
std::string format_perf(const Perf& perf);

nlohmann::json to_json(const CheckResult& result);

}  // namespace pgrm::node
