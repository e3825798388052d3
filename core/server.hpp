#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/db.hpp"
#include "core/exec.hpp"
#include "core/timeouts.hpp"

namespace pgrm {

// What a running server says about itself, in one round trip.
struct ServerFacts {
    int version_num = 0;             // 150018
    bool in_recovery = false;
    std::string system_identifier;   // same for a primary and all its standbys
    std::string data_directory;      // empty unless the role may read it
    std::string config_file;         // its postgresql.conf; empty unless the role may read it
    std::string current_lsn;         // primary: pg_current_wal_lsn(); standby: last replayed
};
ServerFacts query_server_facts(Connection& conn);

// Where a server's WAL is: the timeline it writes or replays, and the end of the WAL
// it has (a primary's insert position; a standby's furthest received or replayed).
// A standby that no longer streams knows its timeline only from its control file and
// the names of the WAL segments it received, so both count; not from the history files
// it fetched: a walreceiver fetches the new timeline's history before the new primary
// checks where this standby is, and refuses it if its WAL runs past the fork.
struct WalPosition {
    int timeline = 0;
    std::string lsn;
};
WalPosition query_wal_position(Connection& conn, std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

// The content of the server's history file of timeline tli ("" for timeline 1),
// read with pg_read_file, else with TIMELINE_HISTORY over a replication connection.
std::string timeline_history(Connection& conn, const Conninfo& conninfo, int tli,
                             std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

// A setting's value as the server reports it (SHOW name).
std::string show_setting(Connection& conn, const std::string& name);

// What repmgrd asks servers on every pass, one round trip each, giving up after timeout.
bool query_in_recovery(Connection& conn, std::chrono::milliseconds timeout);
// Whether a server is in recovery, and read-only by its configuration (a fence: see
// sample_node), in one round trip: what a standby's daemon asks its primary every pass.
struct UpstreamState {
    bool in_recovery = true;
    bool read_only = false;
};
UpstreamState query_upstream_state(Connection& conn, std::chrono::milliseconds timeout);
// A primary's WAL insert position.
std::string query_current_lsn(Connection& conn, std::chrono::milliseconds timeout);

// A standby's WAL received and replayed, and when the last transaction it replayed was
// committed (each unknown before it has any).
struct StandbyPositions {
    std::optional<std::string> received, replayed, last_replayed_xact_time;
};
StandbyPositions query_standby_positions(Connection& conn, std::chrono::milliseconds timeout);

// Another node as a standby sees it after the primary went silent: its role, its WAL end
// (the furthest received or replayed), and its WAL receiver: where it streams from and
// whether it heard from there within `heard_within`.
struct PeerView {
    bool in_recovery = true;
    std::string wal_end;
    std::optional<std::string> sender_host;
    std::optional<int> sender_port;
    bool receiver_heard = false;  // streaming, with a message received within the window
};
PeerView query_peer_view(Connection& conn, std::chrono::seconds heard_within, std::chrono::milliseconds timeout);

// CHECKPOINT: every buffer dirtied so far is written out, and the control file names the
// server's current timeline.
void checkpoint(Connection& conn, std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

// Fences a primary without stopping it: default_transaction_read_only = on, kept in
// postgresql.auto.conf and reloaded, then every client session ended. A server in
// recovery takes no writes and is left as it is (false): a fence written into a standby
// would outlive its next promotion.
bool make_read_only(Connection& conn, std::chrono::milliseconds timeout);
// The same fence for a server that runs but does not answer (frozen by SIGSTOP, hung):
// default_transaction_read_only = on written into its postgresql.auto.conf, then a SIGHUP
// to its postmaster and to every process it forked. A stopped process keeps the signal
// pending and takes it before anything else once it runs again, and a backend reloads its
// configuration between reading a command and running it: its next transaction, in any
// session, is read-only. The postmaster is the one postmaster.pid names, and only while
// it runs in data_directory (a stale file's PID may be another program's). Returns what
// failed; empty: done.
std::string make_read_only_unanswered(const std::string& data_directory);

// PostgreSQL programs: from the config's pg_bindir, else the bindir of the given
// major version (/usr/lib/postgresql/15/bin), else the newest installed, else PATH.
std::string pg_program(const std::string& name, const Config* config, int major_version = 0);

// The OS user PostgreSQL programs must run as: nullopt when we are not root; else the
// owner of path (or of its nearest existing parent), or fallback when that is root.
std::optional<std::string> postgres_os_user(const std::string& path,
                                            const std::string& fallback = "postgres");

// Gives a file or directory we created to os_user (chown), when there is one: files we
// create as root belong to the user PostgreSQL runs as.
void hand_over(const std::string& path, const std::optional<std::string>& os_user);

inline constexpr int kServerControlS = static_cast<int>(timeouts::kServerControl.count());

// The options after the program in a line of postmaster.opts ("" when none), taken as
// pg_ctl restart takes them: everything from the first space followed by a double quote.
std::string postmaster_options(const std::string& opts_line);

// A cluster made by Debian's pg_createcluster: its postgresql.conf, in
// <etc_root>/<version>/<name>, names the data directory in data_directory.
struct DebianCluster {
    std::string version;            // "15"
    std::string name;               // "main"
    std::string config_directory;   // /etc/postgresql/15/main
};
std::optional<DebianCluster> find_debian_cluster(const std::string& data_directory,
                                                 const std::string& etc_root = "/etc/postgresql");

// The directory of the server's postgresql.conf when it is not the data directory: the
// config_directory setting, else the Debian cluster's; "" when it is the data directory.
std::string config_directory(const Config* config, const std::string& data_directory);

// The command that makes the server start, stop, restart or reload (action): the
// service_<action>_command setting; else, for a Debian cluster, pg_ctlcluster; else
// empty (pg_ctl). Throws Error(BadConfig) when the setting cannot be split.
std::vector<std::string> service_command(const std::string& setting, const std::optional<DebianCluster>& debian,
                                         const std::string& action);
std::vector<std::string> service_command(const Config* config, const std::string& data_directory,
                                         const std::string& action);

// How a user makes the server do action, for hints: the service command, else pg_ctl.
std::string server_control_hint(const Config* config, const std::string& data_directory,
                                const std::string& action);

// The Debian cluster whose postgresql.conf is config_file (as SHOW config_file names it:
// /etc/postgresql/<version>/<name>/postgresql.conf), by its path alone.
std::optional<DebianCluster> debian_cluster_of_config_file(const std::string& config_file);

// How pgrm starts, stops, restarts and reloads a node's server, how it knows, and what
// is missing (node status, node check).
struct ServerControl {
    std::string via;                   // "settings", "debian_cluster" or "pg_ctl" (how start is made)
    std::optional<DebianCluster> debian;   // found by its data directory in /etc/postgresql
    std::string start, stop, restart, reload;   // command lines, as hints show them
    std::string config_file;           // the running server's, "" when unknown
    std::string warning;               // "" when pgrm can control the server as it runs
};
ServerControl server_control(const Config& config, const std::string& data_directory,
                             const std::string& config_file);
// The judgement itself, given what was found (pure).
ServerControl judge_server_control(const Config& config, const std::string& data_directory,
                                   const std::string& config_file, const std::optional<DebianCluster>& debian);

// Local server control through the service manager's commands when there are (run as
// pgrm's user: pg_ctlcluster run as root switches to the cluster's owner itself, and
// systemctl needs root), else through pg_ctl run as the data directory's owner.
class LocalServer {
public:
    LocalServer(std::string data_directory, const Config* config);

    // True when the postmaster named in postmaster.pid is alive (a zombie is not).
    bool running() const;
    // The command-line options the server last started with (postmaster.opts), "" when
    // there are none (a fresh copy: pg_basebackup and pg_rewind leave the file out).
    std::string last_options() const;
    // Starts the server with its last command-line options, as pg_ctl restart would: a
    // service manager gives -c config_file=... (Debian's pg_ctlcluster), -p or -k there,
    // not in the data directory, and a server started without them may not come up.
    ExecResult start(int timeout_s = kServerControlS) const;
    // Returns once the postmaster has exited; not ok when it is still running after timeout_s.
    ExecResult stop(const std::string& mode = "fast", int timeout_s = kServerControlS) const;
    ExecResult restart(int timeout_s = kServerControlS) const;
    // Through service_reload_command when it is set, else pg_ctl reload.
    ExecResult reload(int timeout_s = kServerControlS) const;
    ExecResult promote(int timeout_s = kServerControlS) const;
    const std::string& data_directory() const { return data_directory_; }

private:
    ExecResult pg_ctl(std::vector<std::string> args, int timeout_s) const;
    ExecResult service(const std::vector<std::string>& argv, int timeout_s) const;
    std::string server_log() const;  // <data_directory>/log/pgrm-server.log
    std::string data_directory_;
    const Config* config_;
};

// The state letter of /proc/<pid>/stat (R, S, D, T, Z...); nullopt when it cannot be read.
std::optional<char> process_state(int pid);

// True when host names this machine: empty (Unix socket), a socket path, localhost,
// or a loopback address.
bool is_local_host(const std::string& host);

}  // namespace pgrm
