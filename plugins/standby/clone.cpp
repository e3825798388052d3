// standby clone [node]: copies a running server's data directory into a new standby,
// with pg_basebackup (default) or, as the seed did, pg_backup_start + rsync; then
// writes what a PostgreSQL 12+ standby needs to start. With --force over a stopped
// data directory it is a rejoin (core/rejoin): pg_rewind, else an rsync delta.
#include "plugins/standby/clone.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/metadata.hpp"
#include "core/node_identity.hpp"
#include "core/recovery.hpp"
#include "core/server.hpp"
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
    bool has_data = s.target_exists && !s.target_empty;
    if (has_data && !s.force)
        throw Error(ExitCode::BadConfig, "target directory \"" + s.target + "\" is not empty", "",
                    "use --force to copy only what changed over the existing files");
    ClonePlan plan;
    if (has_data) {
        RejoinPlan rejoin = plan_rejoin(s.rewind, s.source);
        plan.method = rejoin.method;
        plan.delta = true;
        plan.steps = rejoin.steps;
    } else {
        plan.method = s.method;
        if (!s.target_exists) plan.steps.push_back("create directory \"" + s.target + "\" (mode 0700)");
        if (plan.method == "pg_basebackup")
            plan.steps.push_back("copy the source with pg_basebackup (WAL streamed, fast checkpoint)");
        else
            for (auto& step : rsync_steps(s.source, false)) plan.steps.push_back(std::move(step));
    }
    plan.steps.push_back("write standby.signal and primary_conninfo in postgresql.auto.conf");
    return plan;
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
        s.source = {is_local_host(host), host, o.remote_user};
        CopyEnv env;
        env.config = ctx.config ? &*ctx.config : nullptr;
        env.os_user = os_user_.empty() ? postgres_os_user(fs::path(target).parent_path().string())
                                       : (geteuid() == 0 ? std::optional(os_user_) : std::nullopt);
        env.major = facts.version_num / 10000;
        env.ignore_rsync_warning = o.ignore_rsync_warning;
        if (s.target_exists && !s.target_empty && !s.target_running) s.rewind = check_rewind(target, facts, env);
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
        prepare_target(target, s.target_exists, env.os_user);
        unsigned long long bytes = 0;
        if (plan.delta) {
            RejoinOutcome done = rejoin(s.rewind, conn, source, facts, s.source, target, env);
            bytes = done.bytes;
            if (done.method != plan.method) {
                plan.method = done.method;
                r.data["method"] = plan.method;
                r.data["rewind_error"] = done.rewind_error;
            }
        } else if (plan.method == "pg_basebackup") {
            bytes = copy_with_pg_basebackup(ctx, source, target, env);
        } else {
            bytes = rsync_from_source(conn, facts, s.source, target, env, false);
        }

        // 5. What the standby needs to start: pg_wal, standby.signal, primary_conninfo.
        ensure_wal_directory(target, env.os_user);
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
        r.lines.push_back("start the standby with: " +
                          server_control_hint(ctx.config ? &*ctx.config : nullptr, target, "start"));
        return r;
    }

private:
    std::string node_;
    std::string method_ = "pg_basebackup";
    bool dry_run_ = false;
    std::string os_user_;

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
                                                      const std::string& target, const CopyEnv& env) {
        ExecSpec spec;
        spec.argv = {pg_program("pg_basebackup", env.config, env.major),
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
        spec.run_as = env.os_user;
        log::info("running: " + describe_argv(spec.argv));
        ExecResult res = run_program(spec);
        if (!res.ok())
            throw Error(ExitCode::BadRsync, "pg_basebackup failed with exit code " +
                                                std::to_string(res.exit_code),
                        last_line(res.err));
        return directory_bytes(target);
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
            meta.commit_locally();
            if (!meta.installed()) {
                log::warning("no metadata for cluster \"" + cfg.cluster + "\" on the source: the clone is "
                             "not recorded; register the node once it runs");
                return;
            }
            std::vector<Node> nodes = meta.nodes();
            auto upstream = node_at(nodes, endpoints_of(source).front());
            std::string details =
                "cloned from " + source.get("host").value_or("") + " into " + target + " with " + method;
            if (!meta.node(cfg.node)) {
                record_event(cfg, &meta, {cfg.node, "standby_clone", true, details, upstream});
                return;
            }
            meta.save_node(node_from_config(cfg, "standby", upstream, target));
            record_event(cfg, &meta, {cfg.node, "standby_clone", true, details + "; re-registered as standby", upstream});
        } catch (const Error& e) {
            log::warning(std::string("could not record the clone in the metadata: ") + e.what());
        }
    }
};

}  // namespace

void register_standby_clone(Registry& registry) { registry.add(std::make_unique<StandbyClone>()); }

}  // namespace pgrm
