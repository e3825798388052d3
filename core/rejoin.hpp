#pragma once

// Rejoin: bringing a stopped data directory back in line with a running source of the
// same database system. pg_rewind when the target allows it (after a CHECKPOINT on the
// source), else an rsync --checksum delta inside a backup on the source; either way the
// target keeps its own configuration files. Shared by `standby clone --force` and
// `node rejoin` (and soon switchover); the rsync copy serves a fresh
// `standby clone --method rsync` too.
//
// The planning functions are pure (unit-tested); the rest runs programs and SQL.

#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/db.hpp"
#include "core/server.hpp"

namespace pgrm {

// What pg_controldata says about a data directory, as far as rewinding goes.
struct ControlData {
    std::optional<std::string> system_identifier;  // none: no readable data directory
    bool wal_log_hints = false;
    bool data_checksums = false;
    std::string state;  // "Database cluster state": "shut down", "in production", ...
    std::string checkpoint_lsn;  // "Latest checkpoint location"

    // pg_rewind rewinds only a data directory whose server was shut down cleanly.
    bool shut_down_cleanly() const { return state == "shut down" || state == "shut down in recovery"; }
};

// Reads pg_controldata's "Key: value" lines (LC_ALL=C).
ControlData parse_control_data(const std::string& pg_controldata_output);

// Whether pg_rewind can bring the target onto the source, and if not, why.
struct RewindCheck {
    bool possible = false;
    std::string why_not;  // for the plan and the warning, when not possible
    // A target not shut down cleanly needs its crash recovery finished first: pg_rewind
    // does that itself in single-user mode, which cannot run a standby; a standby is
    // started once as a standby and stopped. Recovering a standby as a primary would
    // write WAL its upstream never wrote, on the same timeline, which pg_rewind cannot see.
    enum class Before { Nothing, SingleUserRecovery, StartAndStopAsStandby };
    Before before = Before::Nothing;
};

// Linux reports a failed write-back through syncfs(2) from 5.8 on (release "6.1.0-18-amd64");
// before, a sync must fsync each file to see one. Unparsable: false.
bool syncfs_reports_errors(const std::string& kernel_release);
std::string kernel_release();  // uname's release, "" when it fails

// pg_rewind needs the target to be an earlier state of the source's own database system,
// with wal_log_hints or checksums so it can copy only what diverged. standby: the target
// holds standby.signal.
RewindCheck judge_rewind(const ControlData& target, const std::string& source_system_identifier,
                         bool standby = false);

// Where rsync copies from: the source's data directory on this machine or over ssh.
struct RsyncSource {
    bool local = false;
    std::string host;
    std::string remote_user;  // -R
};

// The steps of an rsync copy under a backup on the source (delta: over existing files,
// copying only what changed). Throws pgrm::Error(BadConfig) without a host to reach.
std::vector<std::string> rsync_steps(const RsyncSource& from, bool delta);

// The configuration files PostgreSQL reads from the data directory unless told to look
// elsewhere, and postmaster.opts, the command line the server last ran with (which
// LocalServer::start reuses, as pg_ctl restart does). They describe the node (its port,
// who may connect), not the database: a rejoin keeps the target's own, where pg_rewind
// and rsync would bring the source's, and pg_rewind (PostgreSQL 14 and later) deletes
// postmaster.opts.
const std::vector<std::string>& node_config_files();

// What rsync leaves out of a copy of the source's data directory: what pg_basebackup
// leaves out, and in a delta the target's own configuration files.
std::vector<std::string> rsync_excludes(bool delta);

// One of the target's configuration files as it was before a rejoin.
struct KeptFile {
    std::string name;                    // relative to the data directory
    std::optional<std::string> content;  // none: the target had no such file
    unsigned mode = 0600;
    unsigned uid = 0, gid = 0;
};

// Reads the target's node_config_files(); throws pgrm::Error(BadConfig) when one that
// exists cannot be read (a rejoin would then lose it).
std::vector<KeptFile> keep_config_files(const std::string& target);

// Puts them back as they were (content, mode, owner); a file the target did not have
// is removed, so the target ends with exactly its own configuration.
void restore_config_files(const std::string& target, const std::vector<KeptFile>& kept);

// How to bring existing files in line: "pg_rewind" or "rsync", and the steps.
struct RejoinPlan {
    std::string method;
    std::vector<std::string> steps;
};
RejoinPlan plan_rejoin(const RewindCheck& rewind, const RsyncSource& from);

// rsync's --rsh value: "ssh -o BatchMode=yes" and the words of ssh_options, each quoted
// the way rsync reads it when it holds a space.
std::string rsync_rsh(const std::string& ssh_options);

// How the programs run: the config (pg_bindir, ssh_options), the OS user that owns the
// target (when we are root), the source's major version, and -I.
struct CopyEnv {
    const Config* config = nullptr;
    std::optional<std::string> os_user;
    int major = 0;
    bool ignore_rsync_warning = false;
};

// Runs pg_controldata on a data directory; nothing known when it fails.
ControlData read_control_data(const std::string& data_directory, const CopyEnv& env);

// Runs pg_controldata on the target and judges it; logs why when pg_rewind is out.
RewindCheck check_rewind(const std::string& target, const ServerFacts& source, const CopyEnv& env);

// The WAL segment files a copy made between pg_backup_start and pg_backup_stop needs:
// from the file its backup label names (START WAL LOCATION, on the backup's timeline) to
// the one holding the stop LSN. Empty when the label or the LSN cannot be read, or the
// range is implausible: then the whole pg_wal is copied, as before.
std::vector<std::string> backup_wal_segments(const std::string& labelfile, const std::string& stop_lsn,
                                             std::uint64_t segment_size);

// Copies the source's data directory with rsync --checksum between pg_backup_start and
// pg_backup_stop on conn, writes backup_label (and tablespace_map), then copies the WAL
// written meanwhile (those segments only, and the timeline history files: the source's
// pg_wal may hold up to max_wal_size of older and recycled segments). delta: over the target's files, keeping its configuration files.
// Returns the bytes transferred.
unsigned long long rsync_from_source(Connection& conn, const ServerFacts& facts, const RsyncSource& from,
                                     const std::string& target, const CopyEnv& env, bool delta);

// What a rejoin did.
struct RejoinOutcome {
    std::string method;        // "pg_rewind", or "rsync" (planned, or after pg_rewind failed)
    unsigned long long bytes = 0;
    std::string rewind_error;  // why pg_rewind failed, when it did
};

// Brings the stopped target in line with the source on conn: pg_rewind when the check
// allows it, falling back to an rsync delta if it fails; else the rsync delta. The
// target keeps its own configuration files (node_config_files()), even when this fails.
RejoinOutcome rejoin(const RewindCheck& rewind, Connection& conn, const Conninfo& source,
                     const ServerFacts& facts, const RsyncSource& from, const std::string& target,
                     const CopyEnv& env);

}  // namespace pgrm
