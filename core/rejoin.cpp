#include "core/rejoin.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "core/error.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/timeline.hpp"
#include "core/timeouts.hpp"

namespace pgrm {

namespace fs = std::filesystem;

namespace {

const char* const kBackupStartSql = "SELECT pg_backup_start($1, true)";           // PG 15+
const char* const kBackupStartSqlOld = "SELECT pg_start_backup($1, true, false)";  // PG 12-14
const char* const kBackupStopSql =
    "SELECT labelfile, spcmapfile, lsn::text, "
    "       (SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size') "
    "  FROM pg_backup_stop(true)";
const char* const kBackupStopSqlOld =
    "SELECT labelfile, spcmapfile, lsn::text, "
    "       (SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size') "
    "  FROM pg_stop_backup(false, true)";

// Left out of an rsync copy, as pg_basebackup leaves them out.
const std::vector<std::string> kBasebackupExcludes = {
    "pg_wal/*", "postmaster.pid", "postmaster.opts", "pg_replslot/*", "pg_dynshmem/*",
    "pg_notify/*", "pg_serial/*", "pg_snapshots/*", "pg_stat_tmp/*", "pg_subtrans/*",
    "pgsql_tmp*", "pg_internal.init", "backup_label", "backup_label.old", "tablespace_map",
    "standby.signal", "recovery.signal", "log/"};

constexpr int kRsyncPartialTransfer = 24;  // "some files vanished before they could be transferred"

std::string describe(const RsyncSource& from) {
    if (from.local) return "the local source directory";
    return (from.remote_user.empty() ? "" : from.remote_user + "@") + from.host + " over ssh";
}

// "Total transferred file size: 1,234 bytes" from rsync --stats.
unsigned long long transferred_bytes(const std::string& stats) {
    const std::string key = "Total transferred file size: ";
    size_t at = stats.find(key);
    if (at == std::string::npos) return 0;
    unsigned long long n = 0;
    for (size_t i = at + key.size(); i < stats.size() && stats[i] != ' '; ++i)
        if (std::isdigit(static_cast<unsigned char>(stats[i]))) n = n * 10 + (stats[i] - '0');
    return n;
}

// includes are rsync's first rules: what they name is copied even if an exclude matches it.
unsigned long long rsync(const std::string& from, const std::string& to,
                         const std::vector<std::string>& excludes, bool delete_extra, const CopyEnv& env,
                         const std::vector<std::string>& includes = {}) {
    ExecSpec spec;
    // --checksum: a delta compares contents, never trusting size and mtime.
    spec.argv = {"rsync", "--archive", "--checksum", "--stats",
                 "--rsh=" + rsync_rsh(env.config ? env.config->ssh_options : "")};
    if (delete_extra) spec.argv.push_back("--delete");
    for (const auto& i : includes) spec.argv.push_back("--include=" + i);
    for (const auto& e : excludes) spec.argv.push_back("--exclude=" + e);
    spec.argv.insert(spec.argv.end(), {from, to});
    spec.run_as = env.os_user;
    log::info("running: " + describe_argv(spec.argv));
    ExecResult res = run_program(spec);
    bool partial = res.exit_code == kRsyncPartialTransfer;
    if (partial && env.ignore_rsync_warning)
        log::warning("rsync: some files vanished during the copy (ignored with -I)");
    else if (!res.ok())
        throw Error(ExitCode::BadRsync, "rsync failed with exit code " + std::to_string(res.exit_code),
                    last_line(res.err),
                    partial ? "files changing on a live server is expected: -I ignores it" : "");
    return transferred_bytes(res.out);
}

void write_backup_file(const fs::path& path, const std::string& text, const CopyEnv& env) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0)
        throw Error(ExitCode::StopBackup, "could not write \"" + path.string() + "\"");
    ::chmod(path.c_str(), 0600);
    hand_over(path.string(), env.os_user);
}

// syncfs(2) once per file system under the data directory (itself, pg_wal and the
// tablespaces, which may be links elsewhere), as PostgreSQL 17's --sync-method=syncfs.
void sync_file_systems(const std::string& data_directory) {
    std::vector<fs::path> roots = {data_directory, fs::path(data_directory) / "pg_wal"};
    std::error_code ec;
    for (const auto& link : fs::directory_iterator(fs::path(data_directory) / "pg_tblspc", ec))
        roots.push_back(link.path());
    std::vector<dev_t> synced;
    for (const fs::path& root : roots) {
        int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) throw Error(ExitCode::BadRsync, "could not open \"" + root.string() + "\"", std::strerror(errno));
        struct stat st {};
        const bool known = ::fstat(fd, &st) == 0;
        if (known && std::find(synced.begin(), synced.end(), st.st_dev) != synced.end()) {
            ::close(fd);
            continue;
        }
        const int rc = ::syncfs(fd);
        const int err = errno;
        ::close(fd);
        if (rc != 0)
            throw Error(ExitCode::BadRsync, "could not sync the file system of \"" + root.string() + "\"",
                        std::strerror(err));
        log::info("synced the file system of \"" + root.string() + "\" (syncfs)");
        if (known) synced.push_back(st.st_dev);
    }
}

// pg_rewind against the source, after a checkpoint there. Returns the bytes it copied.
unsigned long long rewind(Connection& conn, const Conninfo& source, const std::string& target,
                          const CopyEnv& env) {
    // So that the promoted source's control file names its current timeline: until it
    // checkpoints, pg_rewind would wrongly conclude that no rewind is needed.
    checkpoint(conn);
    Conninfo server = source;
    server.erase("password");  // pg_rewind finds it in PGPASSWORD or the passfile
    ExecSpec spec;
    spec.argv = {pg_program("pg_rewind", env.config, env.major), "--target-pgdata", target,
                 "--source-server", server.str(), "--progress"};
    // The crash recovery it runs first (postgres --single) must read the real configuration,
    // which a Debian cluster keeps in /etc; PostgreSQL 12's pg_rewind cannot be told, and
    // fails there, so that rsync copies instead.
    if (std::string dir = config_directory(env.config, target); !dir.empty()) {
        if (env.major == 0 || env.major >= 13)
            spec.argv.push_back("--config-file=" + (fs::path(dir) / "postgresql.conf").string());
        else
            log::warning("pg_rewind of PostgreSQL " + std::to_string(env.major) +
                         " cannot read the configuration in \"" + dir + "\"");
    }
    // pg_rewind's own sync fsyncs every file of the data directory, one flush of the
    // disk's cache each: seconds for the thousands of files of a cluster, then as many
    // again when the server starts. syncfs flushes each file system once instead.
    const bool syncfs = syncfs_reports_errors(kernel_release());
    if (syncfs) spec.argv.push_back("--no-sync");
    spec.run_as = env.os_user;
    spec.env["LC_ALL"] = "C";
    unsigned long long bytes = 0;
    spec.on_stderr_line = [&bytes](const std::string& line) {
        // "pg_rewind: need to copy 52 MB (total source directory size is 84 MB)"
        const std::string key = "need to copy ";
        if (size_t at = line.find(key); at != std::string::npos)
            bytes = std::strtoull(line.c_str() + at + key.size(), nullptr, 10) * 1024 * 1024;
        if (line.find(" kB (") == std::string::npos) log::info(line);  // not progress
    };
    log::info("running: " + describe_argv(spec.argv));
    ExecResult res = run_program(spec);
    if (!res.ok())
        throw Error(ExitCode::BadRsync, "pg_rewind failed with exit code " + std::to_string(res.exit_code),
                    last_line(res.err));
    if (syncfs) sync_file_systems(target);
    return bytes;
}

// A standby not shut down cleanly, started once as a standby (its crash recovery
// replays only WAL it has, read-only) and stopped: then "shut down in recovery".
void finish_recovery_as_standby(const std::string& target, const CopyEnv& env) {
    LocalServer server(target, env.config);
    log::info("the target standby was not shut down cleanly: starting and stopping it once");
    ExecResult res = server.start();
    if (res.ok()) res = server.stop("fast");
    if (!res.ok())
        throw Error(ExitCode::NoRestart, "could not start and stop the target standby once", last_line(res.err));
}

}  // namespace

ControlData parse_control_data(const std::string& pg_controldata_output) {
    std::map<std::string, std::string> values;
    std::istringstream in(pg_controldata_output);
    std::string line;
    while (std::getline(in, line)) {
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        size_t v = line.find_first_not_of(' ', colon + 1);
        values[line.substr(0, colon)] = v == std::string::npos ? "" : line.substr(v);
    }
    ControlData c;
    if (auto id = values.find("Database system identifier"); id != values.end())
        c.system_identifier = id->second;
    c.wal_log_hints = values["wal_log_hints setting"] == "on";
    c.checkpoint_lsn = values["Latest checkpoint location"];
    // Only a "0" rules checksums out (PostgreSQL 12+ always prints the line).
    auto checksums = values.find("Data page checksum version");
    c.data_checksums = checksums == values.end() || checksums->second != "0";
    c.state = values["Database cluster state"];
    return c;
}

ControlData read_control_data(const std::string& data_directory, const CopyEnv& env) {
    ExecSpec spec;
    spec.argv = {pg_program("pg_controldata", env.config, env.major), "-D", data_directory};
    spec.run_as = env.os_user;
    spec.env["LC_ALL"] = "C";  // English keys
    spec.timeout = timeouts::kHelperProgram;
    ExecResult res = run_program(spec);
    return res.ok() ? parse_control_data(res.out) : ControlData{};
}

std::string kernel_release() {
    struct utsname u {};
    return ::uname(&u) == 0 ? u.release : "";
}

bool syncfs_reports_errors(const std::string& kernel_release) {
    static const std::regex version(R"(([0-9]+)\.([0-9]+)([^0-9].*)?)");
    std::smatch m;
    if (!std::regex_match(kernel_release, m, version) || m[1].length() > 6 || m[2].length() > 6) return false;
    const int major = std::stoi(m[1].str()), minor = std::stoi(m[2].str());
    return major > 5 || (major == 5 && minor >= 8);
}

RewindCheck judge_rewind(const ControlData& target, const std::string& source_system_identifier, bool standby) {
    RewindCheck r;
    if (!target.system_identifier)
        r.why_not = "the target holds no readable PostgreSQL data directory";
    else if (*target.system_identifier != source_system_identifier)
        r.why_not = "the target is another database system (" + *target.system_identifier + ")";
    else if (!target.wal_log_hints && !target.data_checksums)
        r.why_not = "the target has neither wal_log_hints nor data checksums";
    else
        r.possible = true;
    if (r.possible && !target.shut_down_cleanly())
        r.before = standby ? RewindCheck::Before::StartAndStopAsStandby : RewindCheck::Before::SingleUserRecovery;
    return r;
}

std::vector<std::string> rsync_steps(const RsyncSource& from, bool delta) {
    if (!from.local && from.host.empty()) throw Error(ExitCode::BadConfig, "rsync needs the source's host name");
    return {"start a non-exclusive backup on the source (pg_backup_start)",
            std::string(delta ? "copy only changed files" : "copy the data directory") + " with rsync from " +
                describe(from),
            "stop the backup (pg_backup_stop) and write backup_label",
            "copy the WAL written during the backup"};
}

const std::vector<std::string>& node_config_files() {
    static const std::vector<std::string> files = {"postgresql.conf", "postgresql.auto.conf", "pg_hba.conf",
                                                   "pg_ident.conf", "postmaster.opts"};
    return files;
}

std::vector<std::string> rsync_excludes(bool delta) {
    std::vector<std::string> excludes = kBasebackupExcludes;
    if (delta)
        for (const std::string& name : node_config_files()) excludes.push_back("/" + name);  // top level only
    return excludes;
}

std::vector<KeptFile> keep_config_files(const std::string& target) {
    std::vector<KeptFile> kept;
    for (const std::string& name : node_config_files()) {
        KeptFile f;
        f.name = name;
        fs::path path = fs::path(target) / name;
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0) {
            if (!S_ISREG(st.st_mode))
                throw Error(ExitCode::BadConfig, "\"" + path.string() + "\" is not a regular file", "",
                            "a rejoin keeps the node's own configuration files; move this one aside");
            std::ifstream in(path, std::ios::binary);
            std::stringstream text;
            text << in.rdbuf();
            if (!in)
                throw Error(ExitCode::BadConfig, "could not read \"" + path.string() + "\"", "",
                            "a rejoin keeps the node's own configuration files and must read them first");
            f.content = text.str();
            f.mode = st.st_mode & 07777;
            f.uid = st.st_uid;
            f.gid = st.st_gid;
        }
        kept.push_back(std::move(f));
    }
    return kept;
}

void restore_config_files(const std::string& target, const std::vector<KeptFile>& kept) {
    for (const KeptFile& f : kept) {
        fs::path path = fs::path(target) / f.name;
        std::error_code ec;
        if (!f.content) {
            if (fs::remove(path, ec)) log::info("removed \"" + path.string() + "\", which the target did not have");
            continue;
        }
        fs::path tmp = path;
        tmp += ".pgrm-tmp";
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out << *f.content;
            if (!out.flush())
                throw Error(ExitCode::BadConfig, "could not write \"" + tmp.string() + "\"", "",
                            "the node's own " + f.name + " must be put back by hand");
        }
        if (::chown(tmp.c_str(), f.uid, f.gid) != 0 && geteuid() == 0)
            log::warning("could not give \"" + path.string() + "\" back to its owner");
        ::chmod(tmp.c_str(), f.mode);
        fs::rename(tmp, path, ec);
        if (ec)
            throw Error(ExitCode::BadConfig, "could not put back \"" + path.string() + "\": " + ec.message());
    }
    log::info("kept the target's own configuration files");
}

RejoinPlan plan_rejoin(const RewindCheck& rewind, const RsyncSource& from) {
    RejoinPlan plan;
    if (rewind.possible) {
        plan.method = "pg_rewind";
        if (rewind.before == RewindCheck::Before::StartAndStopAsStandby)
            plan.steps.push_back("the target is a standby that was not shut down cleanly: start it once as a "
                                 "standby and stop it, so that its crash recovery is finished");
        plan.steps.push_back("checkpoint the source, so its control file names its current timeline");
        plan.steps.push_back(std::string("rewind the target with pg_rewind (only blocks changed since the fork") +
                             (rewind.before == RewindCheck::Before::SingleUserRecovery
                                  ? "; it first finishes the target's crash recovery in single-user mode"
                                  : "") +
                             "); if that fails, copy changed files with rsync");
    } else {
        plan.method = "rsync";
        if (!rewind.why_not.empty()) plan.steps.push_back("no pg_rewind: " + rewind.why_not);
        for (auto& step : rsync_steps(from, true)) plan.steps.push_back(std::move(step));
    }
    std::string names;
    for (const std::string& name : node_config_files()) names += (names.empty() ? "" : ", ") + name;
    plan.steps.push_back("keep the target's own configuration files (" + names + ")");
    return plan;
}

// rsync splits its --rsh value itself on spaces, keeping quoted words whole (no shell).
std::string rsync_rsh(const std::string& ssh_options) {
    std::string rsh = "ssh -o BatchMode=yes";
    for (const std::string& arg : split_command(ssh_options)) {
        if (!arg.empty() && arg.find_first_of(" \t'\"") == std::string::npos)
            rsh += " " + arg;
        else if (arg.find('"') == std::string::npos)
            rsh += " \"" + arg + "\"";
        else if (arg.find('\'') == std::string::npos)
            rsh += " '" + arg + "'";
        else
            throw Error(ExitCode::BadConfig, "ssh_options: an argument cannot hold both kinds of quote");
    }
    return rsh;
}

RewindCheck check_rewind(const std::string& target, const ServerFacts& source, const CopyEnv& env) {
    RewindCheck r = judge_rewind(read_control_data(target, env), source.system_identifier,
                                 fs::exists(fs::path(target) / "standby.signal"));
    if (!r.possible) log::warning("no pg_rewind: " + r.why_not + "; using rsync");
    return r;
}

unsigned long long rsync_from_source(Connection& conn, const ServerFacts& facts, const RsyncSource& from,
                                     const std::string& target, const CopyEnv& env, bool delta) {
    std::string source_dir = facts.data_directory;
    if (source_dir.empty())
        throw Error(ExitCode::BadConfig, "cannot read the source's data_directory",
                    "the rsync method needs a superuser or pg_read_all_settings member",
                    "use -U with such a role, or --method pg_basebackup");
    std::string from_dir = from.local ? source_dir + "/"
                                      : (from.remote_user.empty() ? "" : from.remote_user + "@") + from.host +
                                            ":" + source_dir + "/";

    // The backup stays open as long as this session: if anything below fails, closing
    // the connection aborts it on the server.
    conn.exec(facts.version_num >= 150000 ? kBackupStartSql : kBackupStartSqlOld, {"pgrm standby clone"});
    unsigned long long bytes = rsync(from_dir, target + "/", rsync_excludes(delta), true, env);

    Rows stop = [&] {
        try {
            return conn.exec(facts.version_num >= 150000 ? kBackupStopSql : kBackupStopSqlOld);
        } catch (const Error& e) {
            throw Error(ExitCode::StopBackup, "could not stop the backup on the source", e.what());
        }
    }();
    write_backup_file(fs::path(target) / "backup_label", stop.get(0, 0), env);
    if (!stop.is_null(0, 1) && !stop.get(0, 1).empty())
        write_backup_file(fs::path(target) / "tablespace_map", stop.get(0, 1), env);

    // The WAL from the backup's start to its end, so the standby can reach a consistent
    // state even if the source recycles it before the standby connects.
    std::error_code ec;
    fs::create_directories(fs::path(target) / "pg_wal", ec);
    hand_over((fs::path(target) / "pg_wal").string(), env.os_user);
    std::vector<std::string> segments =
        backup_wal_segments(stop.get(0, 0), stop.get(0, 2), static_cast<std::uint64_t>(stop.get_int(0, 3)));
    if (segments.empty()) {
        bytes += rsync(from_dir + "pg_wal/", target + "/pg_wal/", {"archive_status/"}, false, env);
    } else {
        segments.push_back("*.history");
        bytes += rsync(from_dir + "pg_wal/", target + "/pg_wal/", {"*"}, false, env, segments);
    }
    return bytes;
}

std::vector<std::string> backup_wal_segments(const std::string& labelfile, const std::string& stop_lsn,
                                             std::uint64_t segment_size) {
    // "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)"
    static const std::regex start(R"(START WAL LOCATION: [0-9A-Fa-f]+/[0-9A-Fa-f]+ \(file ([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\))");
    std::smatch m;
    std::optional<std::uint64_t> stop = parse_lsn(stop_lsn);
    // A power of two from 1 MB to 1 GB, as initdb --wal-segsize allows.
    if (!std::regex_search(labelfile, m, start) || !stop || segment_size < (1u << 20) ||
        segment_size > (1u << 30) || (segment_size & (segment_size - 1)) != 0)
        return {};
    const std::uint64_t per_xlogid = 0x100000000ULL / segment_size;
    const std::uint64_t first = std::stoull(m[2].str(), nullptr, 16) * per_xlogid + std::stoull(m[3].str(), nullptr, 16);
    const std::uint64_t last = *stop / segment_size;
    // More than 4096 segments (64 GB at 16 MB) for one copy: something is off; copy it all.
    if (last < first || last - first >= 4096) return {};
    std::vector<std::string> names;
    for (std::uint64_t segno = first; segno <= last; ++segno) {
        char name[25];
        std::snprintf(name, sizeof name, "%s%08llX%08llX", m[1].str().c_str(),
                      static_cast<unsigned long long>(segno / per_xlogid),
                      static_cast<unsigned long long>(segno % per_xlogid));
        names.push_back(name);
    }
    return names;
}

RejoinOutcome rejoin(const RewindCheck& check, Connection& conn, const Conninfo& source,
                     const ServerFacts& facts, const RsyncSource& from, const std::string& target,
                     const CopyEnv& env) {
    std::vector<KeptFile> kept = keep_config_files(target);
    RejoinOutcome out;
    out.method = check.possible ? "pg_rewind" : "rsync";
    try {
        if (check.possible) {
            try {
                if (check.before == RewindCheck::Before::StartAndStopAsStandby) finish_recovery_as_standby(target, env);
                out.bytes = rewind(conn, source, target, env);
                restore_config_files(target, kept);
                return out;
            } catch (const Error& e) {
                log::warning(std::string("pg_rewind failed, copying changed files with rsync instead: ") +
                             e.what() + (e.detail().empty() ? "" : " (" + e.detail() + ")"));
                out.method = "rsync";
                out.rewind_error = e.what();
            }
        }
        out.bytes = rsync_from_source(conn, facts, from, target, env, true);
    } catch (...) {
        restore_config_files(target, kept);
        throw;
    }
    restore_config_files(target, kept);
    return out;
}

}  // namespace pgrm
