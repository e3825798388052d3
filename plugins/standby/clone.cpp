// standby clone [node]: copies a running server's data directory into a new standby,
// with pg_basebackup (default) or, as the seed did, pg_backup_start + rsync; then
// writes what a PostgreSQL 12+ standby needs to start.
#include "plugins/standby/clone.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/metadata.hpp"
#include "core/recovery.hpp"
#include "core/server.hpp"
#include "core/timeouts.hpp"
#include "plugins/standby/standby.hpp"

namespace pgrm {

namespace fs = std::filesystem;

namespace {

constexpr long long kSeedWalKeepSegments = 5000;  // the seed's default: 80 GB

const char* const kSourceSettingsSql =
    "SELECT current_setting('wal_level'), "
    "       current_setting('max_wal_senders')::int, "
    "       (SELECT count(*) FROM pg_catalog.pg_stat_replication), "
    "       current_setting('hot_standby'), "
    "       (SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'wal_keep_size'), "
    "       (SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size'), "
    "       (SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical'), "
    "       current_setting('wal_log_hints'), current_setting('data_checksums')";
const char* const kBackupStartSql = "SELECT pg_backup_start($1, true)";           // PG 15+
const char* const kBackupStartSqlOld = "SELECT pg_start_backup($1, true, false)";  // PG 12-14
const char* const kBackupStopSql = "SELECT labelfile, spcmapfile FROM pg_backup_stop(true)";
const char* const kBackupStopSqlOld =
    "SELECT labelfile, spcmapfile FROM pg_stop_backup(false, true)";

// Left out of an rsync copy, as pg_basebackup leaves them out.
const std::vector<std::string> kRsyncExcludes = {
    "pg_wal/*", "postmaster.pid", "postmaster.opts", "pg_replslot/*", "pg_dynshmem/*",
    "pg_notify/*", "pg_serial/*", "pg_snapshots/*", "pg_stat_tmp/*", "pg_subtrans/*",
    "pgsql_tmp*", "pg_internal.init", "backup_label", "backup_label.old", "tablespace_map",
    "standby.signal", "recovery.signal", "log/"};

constexpr int kRsyncPartialTransfer = 24;  // "some files vanished before they could be transferred"

bool directory_empty(const fs::path& p) {
    std::error_code ec;
    return fs::is_empty(p, ec) || ec;
}

unsigned long long directory_bytes(const fs::path& p) {
    unsigned long long total = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += it->file_size(ec);
    return total;
}

struct SourceSettings {
    std::string wal_level;
    long long max_wal_senders = 0, wal_senders_used = 0;
    std::string hot_standby;
    long long wal_keep_size_mb = 0, wal_segment_size = 0, physical_slots = 0;
    bool rewind_possible = false;
};

SourceSettings read_source_settings(Connection& conn) {
    Rows r = conn.exec(kSourceSettingsSql);
    return {r.get(0, 0), r.get_int(0, 1), r.get_int(0, 2), r.get(0, 3), r.get_int(0, 4),
            r.get_int(0, 5), r.get_int(0, 6), r.get(0, 7) == "on" || r.get(0, 8) == "on"};
}

}  // namespace

ClonePlan plan_clone(const CloneSituation& s) {
    if (s.target_running)
        throw Error(ExitCode::BadConfig,
                    "a server is running on the target directory \"" + s.target + "\"", "",
                    "stop it first; pgrm never copies over a running server, even with --force");
    ClonePlan plan;
    plan.method = s.method;
    bool has_data = s.target_exists && !s.target_empty;
    if (has_data && !s.force)
        throw Error(ExitCode::BadConfig, "target directory \"" + s.target + "\" is not empty", "",
                    "use --force to copy only what changed over the existing files");
    if (has_data) {
        plan.method = s.target_rewindable ? "pg_rewind" : "rsync";
        plan.delta = true;
    }
    if (plan.method == "rsync" && !s.source_local && s.source_host.empty())
        throw Error(ExitCode::BadConfig, "rsync needs the source's host name");

    if (!s.target_exists) plan.steps.push_back("create directory \"" + s.target + "\" (mode 0700)");
    if (has_data && !s.target_rewindable && !s.not_rewindable_because.empty())
        plan.steps.push_back("no pg_rewind: " + s.not_rewindable_because);
    if (plan.method == "pg_basebackup") {
        plan.steps.push_back("copy the source with pg_basebackup (WAL streamed, fast checkpoint)");
    } else if (plan.method == "pg_rewind") {
        plan.steps.push_back("checkpoint the source, so its control file names its current timeline");
        plan.steps.push_back("rewind the target with pg_rewind (only blocks changed since the fork); "
                             "if that fails, copy changed files with rsync");
    } else {
        std::string from = s.source_local ? "the local source directory"
                                          : (s.remote_user.empty() ? "" : s.remote_user + "@") +
                                                s.source_host + " over ssh";
        plan.steps.push_back("start a non-exclusive backup on the source (pg_backup_start)");
        plan.steps.push_back(std::string(plan.delta ? "copy only changed files" : "copy the data directory") +
                             " with rsync from " + from);
        plan.steps.push_back("stop the backup (pg_backup_stop) and write backup_label");
        plan.steps.push_back("copy the WAL written during the backup");
    }
    plan.steps.push_back("write standby.signal and primary_conninfo in postgresql.auto.conf");
    return plan;
}

// rsync's --rsh value: ssh that never prompts, plus the configured ssh_options. rsync
// splits it itself on spaces, keeping quoted words whole (no shell).
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

namespace {

class StandbyClone : public Command {
public:
    Spec spec() const override {
        return {"standby", "clone", "[node]", "allows creation of a new standby",
                PersonaRepmgr | PersonaPgrm, NeedsNothing, {}};
    }

    void declare(CLI::App& app) override {
        app.add_option("node", node_, "host of the server to clone (or -h)");
        app.add_option("--method", method_, "copy with pg_basebackup (default) or rsync")
            ->check(CLI::IsMember({"pg_basebackup", "rsync"}));
        app.add_flag("--dry-run", dry_run_, "check everything and print the plan; change nothing");
        app.add_option("--os-user", os_user_,
                       "OS user to run PostgreSQL programs as when started as root (default: "
                       "owner of the target's parent directory, else postgres)");
    }

    Result run(Context& ctx) override {
        const GlobalOptions& o = ctx.options;
        auto started = std::chrono::steady_clock::now();

        // 1. The source, from [node]/-h -p -U -d; a registered config adds nothing here.
        Conninfo source;
        std::string host = node_.empty() ? o.host : node_;
        if (host.empty())
            throw Error(ExitCode::BadConfig, "no server to clone from", "",
                        "name it as the last argument or with -h");
        source.set("host", host);
        if (!o.port.empty()) source.set("port", o.port);
        if (!o.username.empty()) source.set("user", o.username);
        source.set("dbname", o.dbname.empty() ? "postgres" : o.dbname);

        std::string target = !o.data_dir.empty() ? o.data_dir
                             : ctx.config && !ctx.config->data_directory.empty()
                                 ? ctx.config->data_directory
                                 : fs::current_path().string();
        target = fs::absolute(target).lexically_normal().string();
        if (target.size() > 1 && target.back() == '/') target.pop_back();

        // 2. The source must be reachable and able to feed a standby.
        Connection conn = Connection::open(source);
        ServerFacts facts = query_server_facts(conn);
        SourceSettings settings = read_source_settings(conn);
        check_source(o, settings, facts);

        // 3. The plan; refusals happen here, before anything changes.
        CloneSituation s;
        s.target = target;
        s.target_exists = fs::exists(target);
        s.target_empty = !s.target_exists || directory_empty(target);
        s.target_running = s.target_exists && LocalServer(target, nullptr).running();
        s.force = o.force;
        s.method = method_;
        s.source_local = is_local_host(host);
        s.source_host = host;
        s.remote_user = o.remote_user;
        std::optional<std::string> os_user =
            os_user_.empty() ? postgres_os_user(fs::path(target).parent_path().string())
                             : (geteuid() == 0 ? std::optional(os_user_) : std::nullopt);
        if (s.target_exists && !s.target_empty && !s.target_running)
            judge_rewind(s, target, facts, os_user, ctx);
        ClonePlan plan = plan_clone(s);

        Result r;
        r.data = {{"source", source.redacted()},
                  {"target", target},
                  {"method", plan.method},
                  {"delta", plan.delta},
                  {"source_version_num", facts.version_num},
                  {"steps", plan.steps}};
        if (dry_run_) {
            for (size_t i = 0; i < plan.steps.size(); ++i)
                r.lines.push_back(std::to_string(i + 1) + ". " + plan.steps[i]);
            r.summary = "standby clone: dry run, nothing changed";
            r.data["dry_run"] = true;
            return r;
        }

        // 4. Copy.
        prepare_target(target, s.target_exists, os_user);
        int major = facts.version_num / 10000;
        unsigned long long bytes = 0;
        if (plan.method == "pg_rewind") {
            try {
                bytes = rewind(ctx, conn, source, target, os_user, major);
            } catch (const Error& e) {
                log::warning(std::string("pg_rewind failed, copying changed files with rsync instead: ") +
                             e.what() + (e.detail().empty() ? "" : " (" + e.detail() + ")"));
                plan.method = "rsync";
                r.data["method"] = plan.method;
                r.data["rewind_error"] = e.what();
            }
        }
        if (plan.method == "pg_basebackup")
            bytes = copy_with_pg_basebackup(ctx, source, target, os_user, major);
        else if (plan.method == "rsync")
            bytes = copy_with_rsync(ctx, conn, facts, host, target, os_user);

        // 5. What the standby needs to start: pg_wal, standby.signal, primary_conninfo.
        ensure_wal_directory(target, os_user);
        std::string app_name = ctx.config ? ctx.config->node_name : fs::path(target).filename().string();
        configure_standby(target, primary_conninfo_for(source, app_name));
        fs::permissions(target, fs::perms::owner_all, fs::perm_options::replace);

        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        record_clone(ctx, source, target, plan.method);
        r.data["seconds"] = seconds;
        r.data["bytes_copied"] = bytes;
        log::info("copied " + std::to_string(bytes) + " bytes with " + plan.method);
        if (!settings.rewind_possible)
            log::warning("neither wal_log_hints nor data_checksums is on: this standby cannot be "
                         "rejoined with pg_rewind after a failover, only re-cloned");
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.1f", seconds);
        r.summary = "standby clone: copied " + host + " into \"" + target + "\" with " + plan.method +
                    (plan.delta ? " (changed files only)" : "") + " in " + secs + " s";
        r.lines.push_back("start the standby with: pg_ctl -D " + target + " start");
        return r;
    }

private:
    std::string node_;
    std::string method_ = "pg_basebackup";
    bool dry_run_ = false;
    std::string os_user_;

    // pg_controldata's "Key: value" lines of the target.
    static std::map<std::string, std::string> control_data(const Context& ctx, const std::string& target,
                                                           const std::optional<std::string>& os_user, int major) {
        ExecSpec spec;
        spec.argv = {pg_program("pg_controldata", ctx.config ? &*ctx.config : nullptr, major), "-D", target};
        spec.run_as = os_user;
        spec.env["LC_ALL"] = "C";  // English keys
        spec.timeout = timeouts::kHelperProgram;
        ExecResult res = run_program(spec);
        std::map<std::string, std::string> out;
        if (!res.ok()) return out;
        std::istringstream in(res.out);
        std::string line;
        while (std::getline(in, line)) {
            size_t colon = line.find(':');
            if (colon == std::string::npos) continue;
            size_t v = line.find_first_not_of(' ', colon + 1);
            out[line.substr(0, colon)] = v == std::string::npos ? "" : line.substr(v);
        }
        return out;
    }

    // Whether the existing files can be rewound rather than re-copied.
    static void judge_rewind(CloneSituation& s, const std::string& target, const ServerFacts& source,
                             const std::optional<std::string>& os_user, const Context& ctx) {
        auto control = control_data(ctx, target, os_user, source.version_num / 10000);
        auto id = control.find("Database system identifier");
        if (id == control.end()) {
            s.not_rewindable_because = "the target holds no readable PostgreSQL data directory";
        } else if (id->second != source.system_identifier) {
            s.not_rewindable_because = "the target is another database system (" + id->second + ")";
        } else if (control["wal_log_hints setting"] != "on" && control["Data page checksum version"] == "0") {
            s.not_rewindable_because = "the target has neither wal_log_hints nor data checksums";
        } else {
            s.target_rewindable = true;
        }
        if (!s.target_rewindable) log::warning("no pg_rewind: " + s.not_rewindable_because + "; using rsync");
    }

    // pg_rewind against the source, after a checkpoint there: until the promoted source
    // checkpoints, its control file names the old timeline and pg_rewind would wrongly
    // conclude that no rewind is needed.
    static unsigned long long rewind(const Context& ctx, Connection& conn, const Conninfo& source,
                                     const std::string& target, const std::optional<std::string>& os_user,
                                     int major) {
        conn.exec("CHECKPOINT");
        Conninfo server = source;
        server.erase("password");  // pg_rewind finds it in PGPASSWORD or the passfile
        ExecSpec spec;
        spec.argv = {pg_program("pg_rewind", ctx.config ? &*ctx.config : nullptr, major),
                     "--target-pgdata", target, "--source-server", server.str(), "--progress"};
        spec.run_as = os_user;
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
        return bytes;
    }

    static void check_source(const GlobalOptions& o, const SourceSettings& s, const ServerFacts& f) {
        if (f.version_num < 120000)
            throw Error(ExitCode::BadConfig, "the source runs PostgreSQL " +
                                                 std::to_string(f.version_num / 10000) +
                                                 "; pgrm needs 12 or later");
        if (s.wal_level != "replica" && s.wal_level != "logical")
            throw Error(ExitCode::BadConfig,
                        "wal_level is \"" + s.wal_level + "\" on the source", "",
                        "set wal_level = replica and restart it");
        long long free_senders = s.max_wal_senders - s.wal_senders_used;
        if (free_senders < 2)
            throw Error(ExitCode::BadConfig,
                        "the source has " + std::to_string(free_senders) + " free WAL senders of " +
                            std::to_string(s.max_wal_senders) + "; cloning needs 2",
                        "", "raise max_wal_senders on the source");
        if (s.hot_standby != "on")
            throw Error(ExitCode::BadConfig, "hot_standby is off on the source", "",
                        "the standby copies its settings: set hot_standby = on");
        long long kept_segments =
            s.wal_segment_size > 0 ? s.wal_keep_size_mb * 1024 * 1024 / s.wal_segment_size : 0;
        if (o.wal_keep_segments > 0 && kept_segments < o.wal_keep_segments)
            throw Error(ExitCode::BadConfig,
                        "wal_keep_size on the source keeps " + std::to_string(kept_segments) +
                            " WAL segments; -w asks for at least " +
                            std::to_string(o.wal_keep_segments),
                        "", "raise wal_keep_size to " +
                                std::to_string(o.wal_keep_segments * s.wal_segment_size / (1024 * 1024)) +
                                "MB");
        if (o.wal_keep_segments == 0 && kept_segments < kSeedWalKeepSegments && s.physical_slots == 0)
            log::warning("wal_keep_size keeps only " + std::to_string(kept_segments) +
                         " WAL segments and no replication slot exists: a standby that falls "
                         "behind may need a new clone");
    }

    static void prepare_target(const std::string& target, bool exists,
                               const std::optional<std::string>& os_user) {
        if (exists) return;
        std::error_code ec;
        fs::create_directories(target, ec);
        if (ec)
            throw Error(ExitCode::BadConfig, "could not create \"" + target + "\": " + ec.message());
        fs::permissions(target, fs::perms::owner_all, fs::perm_options::replace);
        hand_over(target, os_user);
    }

    // Files we create as root belong to the user PostgreSQL runs as.
    static void hand_over(const std::string& path, const std::optional<std::string>& os_user) {
        if (!os_user) return;
        ExecSpec chown;
        chown.argv = {"chown", *os_user + ":", path};
        ExecResult res = run_program(chown);
        if (!res.ok())
            throw Error(ExitCode::BadConfig, "could not give \"" + path + "\" to \"" + *os_user + "\"",
                        res.err);
    }

    static void ensure_wal_directory(const std::string& target, const std::optional<std::string>& os_user) {
        fs::path wal = fs::path(target) / "pg_wal";
        if (fs::exists(wal)) return;
        std::error_code ec;
        fs::create_directory(wal, ec);
        if (ec)
            throw Error(ExitCode::NeedsWalDir, "could not create \"" + wal.string() + "\": " + ec.message());
        fs::permissions(wal, fs::perms::owner_all, fs::perm_options::replace);
        hand_over(wal.string(), os_user);
    }

    static unsigned long long copy_with_pg_basebackup(const Context& ctx, const Conninfo& source,
                                                      const std::string& target,
                                                      const std::optional<std::string>& os_user, int major) {
        ExecSpec spec;
        spec.argv = {pg_program("pg_basebackup", ctx.config ? &*ctx.config : nullptr, major),
                     "--pgdata", target, "--wal-method=stream", "--checkpoint=fast",
                     "--no-password", "--host", *source.get("host")};
        if (auto port = source.get("port")) spec.argv.insert(spec.argv.end(), {"--port", *port});
        if (auto user = source.get("user")) spec.argv.insert(spec.argv.end(), {"--username", *user});
        if (ctx.options.verbose) {
            spec.argv.insert(spec.argv.end(), {"--progress", "--verbose"});
            spec.on_stderr_line = [](std::string line) {
                while (!line.empty() && line.back() == ' ') line.pop_back();
                if (line.rfind("pg_basebackup: ", 0) != 0) line = "pg_basebackup: " + line;
                log::info(line);
            };
        }
        spec.run_as = os_user;
        log::info("running: " + describe_argv(spec.argv));
        ExecResult res = run_program(spec);
        if (!res.ok())
            throw Error(ExitCode::BadRsync, "pg_basebackup failed with exit code " +
                                                std::to_string(res.exit_code),
                        last_line(res.err));
        return directory_bytes(target);
    }

    unsigned long long copy_with_rsync(const Context& ctx, Connection& conn, const ServerFacts& facts,
                                       const std::string& host, const std::string& target,
                                       const std::optional<std::string>& os_user) {
        const GlobalOptions& o = ctx.options;
        std::string rsh = rsync_rsh(ctx.config ? ctx.config->ssh_options : "");
        std::string source_dir = facts.data_directory;
        if (source_dir.empty())
            throw Error(ExitCode::BadConfig, "cannot read the source's data_directory",
                        "the rsync method needs a superuser or pg_read_all_settings member",
                        "use -U with such a role, or --method pg_basebackup");
        std::string from = is_local_host(host)
                               ? source_dir + "/"
                               : (o.remote_user.empty() ? "" : o.remote_user + "@") + host + ":" + source_dir + "/";

        // The backup stays open as long as this session: if anything below fails,
        // closing the connection aborts it on the server.
        conn.exec(facts.version_num >= 150000 ? kBackupStartSql : kBackupStartSqlOld,
                  {"pgrm standby clone"});
        unsigned long long bytes = rsync(o, rsh, from, target + "/", kRsyncExcludes, os_user, true);

        Rows stop = [&] {
            try {
                return conn.exec(facts.version_num >= 150000 ? kBackupStopSql : kBackupStopSqlOld);
            } catch (const Error& e) {
                throw Error(ExitCode::StopBackup, "could not stop the backup on the source", e.what());
            }
        }();
        write_backup_file(fs::path(target) / "backup_label", stop.get(0, 0), os_user);
        if (!stop.is_null(0, 1) && !stop.get(0, 1).empty())
            write_backup_file(fs::path(target) / "tablespace_map", stop.get(0, 1), os_user);

        // The WAL from the backup's start to its end, so the standby can reach a
        // consistent state even if the source recycles it before the standby connects.
        std::error_code ec;
        fs::create_directories(fs::path(target) / "pg_wal", ec);
        hand_over((fs::path(target) / "pg_wal").string(), os_user);
        bytes += rsync(o, rsh, from + "pg_wal/", target + "/pg_wal/", {"archive_status/"}, os_user, false);
        return bytes;
    }

    static unsigned long long rsync(const GlobalOptions& o, const std::string& rsh, const std::string& from,
                                    const std::string& to, const std::vector<std::string>& excludes,
                                    const std::optional<std::string>& os_user, bool delete_extra) {
        ExecSpec spec;
        // --checksum: a forced clone compares contents, never trusting size and mtime.
        spec.argv = {"rsync", "--archive", "--checksum", "--stats", "--rsh=" + rsh};
        if (delete_extra) spec.argv.push_back("--delete");
        for (const auto& e : excludes) spec.argv.push_back("--exclude=" + e);
        spec.argv.insert(spec.argv.end(), {from, to});
        spec.run_as = os_user;
        log::info("running: " + describe_argv(spec.argv));
        ExecResult res = run_program(spec);
        bool partial = res.exit_code == kRsyncPartialTransfer;
        if (partial && o.ignore_rsync_warning)
            log::warning("rsync: some files vanished during the copy (ignored with -I)");
        else if (!res.ok())
            throw Error(ExitCode::BadRsync, "rsync failed with exit code " + std::to_string(res.exit_code),
                        last_line(res.err),
                        partial ? "files changing on a live server is expected: -I ignores it" : "");
        return transferred_bytes(res.out);
    }

    // "Total transferred file size: 1,234 bytes" from rsync --stats.
    static unsigned long long transferred_bytes(const std::string& stats) {
        const std::string key = "Total transferred file size: ";
        size_t at = stats.find(key);
        if (at == std::string::npos) return 0;
        unsigned long long n = 0;
        for (size_t i = at + key.size(); i < stats.size() && stats[i] != ' '; ++i)
            if (std::isdigit(static_cast<unsigned char>(stats[i]))) n = n * 10 + (stats[i] - '0');
        return n;
    }

    static void write_backup_file(const fs::path& path, const std::string& text,
                                  const std::optional<std::string>& os_user) {
        FILE* f = std::fopen(path.c_str(), "w");
        if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0)
            throw Error(ExitCode::StopBackup, "could not write \"" + path.string() + "\"");
        ::chmod(path.c_str(), 0600);
        hand_over(path.string(), os_user);
    }

    static std::string last_line(const std::string& text) {
        std::string t = text;
        while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
        size_t nl = t.find_last_of('\n');
        return nl == std::string::npos ? t : t.substr(nl + 1);
    }

    // With a config, a node already registered (a former primary cloned back, say) is
    // re-registered as a standby of the source, when the source is a registered
    // primary; a new node still registers itself once started. Never fatal.
    static void record_clone(const Context& ctx, const Conninfo& source, const std::string& target,
                             const std::string& method) {
        if (!ctx.config) return;
        const Config& cfg = *ctx.config;
        try {
            // The metadata lives in the database the configuration names, which the
            // source connection (-d, else postgres) need not be.
            Conninfo meta_ci = source;
            if (auto db = parse_conninfo(cfg.conninfo).get("dbname")) meta_ci.set("dbname", *db);
            Connection conn = Connection::open(meta_ci);
            Metadata meta(conn, cfg.cluster);
            if (query_server_facts(conn).in_recovery) return;  // a cascading clone: nothing to write
            if (!meta.installed()) {
                log::warning("no metadata for cluster \"" + cfg.cluster + "\" on the source: the clone is "
                             "not recorded; register the node once it runs");
                return;
            }
            std::vector<Node> nodes = meta.nodes();
            auto upstream = node_at(nodes, source.get("host").value_or(""), source.get("port").value_or("5432"));
            if (!meta.node(cfg.node)) {
                meta.record_event(cfg.node, "standby_clone", true,
                                  "cloned from " + source.get("host").value_or("") + " into " + target +
                                      " with " + method);
                return;
            }
            meta.save_node(node_from_config(cfg, "standby", upstream, target));
            meta.record_event(cfg.node, "standby_clone", true,
                              "cloned from " + source.get("host").value_or("") + " into " + target + " with " +
                                  method + "; re-registered as standby");
        } catch (const Error& e) {
            log::warning(std::string("could not record the clone in the metadata: ") + e.what());
        }
    }
};

}  // namespace

void register_standby_clone(Registry& registry) { registry.add(std::make_unique<StandbyClone>()); }

}  // namespace pgrm
