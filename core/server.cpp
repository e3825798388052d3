#include "core/server.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/recovery.hpp"

namespace pgrm {

namespace fs = std::filesystem;

namespace {

const char* const kFactsSql =
    "SELECT current_setting('server_version_num')::int, pg_is_in_recovery(), "
    "       (SELECT system_identifier::text FROM pg_control_system()), "
    "       CASE WHEN pg_has_role('pg_read_all_settings', 'MEMBER') "
    "            THEN current_setting('data_directory') ELSE '' END, "
    "       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text "
    "            ELSE pg_current_wal_lsn()::text END, "
    "       CASE WHEN pg_has_role('pg_read_all_settings', 'MEMBER') "
    "            THEN current_setting('config_file') ELSE '' END";

const char* const kWalPositionSql =
    "SELECT CASE WHEN pg_is_in_recovery() THEN "
    "         greatest((SELECT timeline_id FROM pg_control_checkpoint()), "
    "                  (SELECT min_recovery_end_timeline FROM pg_control_recovery()), "
    "                  (SELECT received_tli FROM pg_stat_wal_receiver), "
    "                  (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) "
    "                     FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$')) "
    "       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END, "
    "       CASE WHEN pg_is_in_recovery() THEN "
    "         greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text "
    "       ELSE pg_current_wal_lsn()::text END";

const char* const kReadHistorySql = "SELECT pg_read_file('pg_wal/' || $1)";

const char* const kInRecoverySql = "SELECT pg_is_in_recovery()";
const char* const kUpstreamStateSql =
    "SELECT pg_catalog.pg_is_in_recovery(), "
    "       coalesce((SELECT s.setting = 'on' AND s.source = 'configuration file' "
    "                   FROM pg_catalog.pg_settings AS s "
    "                  WHERE s.name = 'default_transaction_read_only'), false)";
const char* const kCurrentLsnSql = "SELECT pg_current_wal_lsn()::text";
const char* const kStandbyPositionsSql =
    "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, "
    "       pg_last_xact_replay_timestamp()";
const char* const kPeerViewSql =
    "SELECT pg_is_in_recovery(), "
    "       coalesce(greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0')::text, "
    "       r.sender_host, r.sender_port, "
    "       coalesce(r.status = 'streaming' "
    "                AND r.last_msg_receipt_time > now() - make_interval(secs => $1), false) "
    "  FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_wal_receiver AS r ON true";
const char* const kCheckpointSql = "CHECKPOINT";
const char* const kReadOnlySql = "ALTER SYSTEM SET default_transaction_read_only = on";
const char* const kReloadSql = "SELECT pg_reload_conf()";
const char* const kEndClientsSql =
    "SELECT count(pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

}  // namespace

WalPosition query_wal_position(Connection& conn, std::chrono::milliseconds timeout) {
    Rows r = conn.exec(kWalPositionSql, {}, timeout);
    return {static_cast<int>(r.get_int(0, 0)), r.get(0, 1)};
}

std::string timeline_history(Connection& conn, const Conninfo& conninfo, int tli, std::chrono::milliseconds timeout) {
    if (tli <= 1) return "";
    char name[32];
    std::snprintf(name, sizeof name, "%08X.history", tli);
    try {
        return conn.exec(kReadHistorySql, {std::string(name)}, timeout).get(0, 0);
    } catch (const Error& e) {
        log::debug(std::string("pg_read_file of the history failed, trying replication: ") + e.what());
    }
    Connection repl = Connection::open(conninfo, ConnectOptions{.replication = true});
    return repl.exec("TIMELINE_HISTORY " + std::to_string(tli)).get(0, 1);
}

ServerFacts query_server_facts(Connection& conn) {
    Rows r = conn.exec(kFactsSql);
    ServerFacts f;
    f.version_num = static_cast<int>(r.get_int(0, 0));
    f.in_recovery = r.get_bool(0, 1);
    f.system_identifier = r.get(0, 2);
    f.data_directory = r.get(0, 3);
    f.current_lsn = r.get(0, 4);
    f.config_file = r.get(0, 5);
    return f;
}

std::string show_setting(Connection& conn, const std::string& name) {
    return conn.exec("SELECT current_setting($1)", {name}).get(0, 0);
}

bool query_in_recovery(Connection& conn, std::chrono::milliseconds timeout) {
    return conn.exec(kInRecoverySql, {}, timeout).get_bool(0, 0);
}

UpstreamState query_upstream_state(Connection& conn, std::chrono::milliseconds timeout) {
    Rows r = conn.exec(kUpstreamStateSql, {}, timeout);
    return {r.get_bool(0, 0), r.get_bool(0, 1)};
}

std::string query_current_lsn(Connection& conn, std::chrono::milliseconds timeout) {
    return conn.exec(kCurrentLsnSql, {}, timeout).get(0, 0);
}

StandbyPositions query_standby_positions(Connection& conn, std::chrono::milliseconds timeout) {
    Rows r = conn.exec(kStandbyPositionsSql, {}, timeout);
    return {r.get_opt(0, 0), r.get_opt(0, 1), r.get_opt(0, 2)};
}

PeerView query_peer_view(Connection& conn, std::chrono::seconds heard_within, std::chrono::milliseconds timeout) {
    Rows r = conn.exec(kPeerViewSql, {std::to_string(heard_within.count())}, timeout);
    PeerView v;
    v.in_recovery = r.get_bool(0, 0);
    v.wal_end = r.get(0, 1);
    v.sender_host = r.get_opt(0, 2);
    if (!r.is_null(0, 3)) v.sender_port = static_cast<int>(r.get_int(0, 3));
    v.receiver_heard = r.get_bool(0, 4);
    return v;
}

void checkpoint(Connection& conn, std::chrono::milliseconds timeout) {
    conn.exec(kCheckpointSql, {}, timeout);
}

bool make_read_only(Connection& conn, std::chrono::milliseconds timeout) {
    if (query_in_recovery(conn, timeout)) return false;
    conn.exec(kReadOnlySql, {}, timeout);
    conn.exec(kReloadSql, {}, timeout);
    conn.exec(kEndClientsSql, {}, timeout);
    return true;
}

namespace {
bool same_directory(const fs::path& a, const fs::path& b);
}  // namespace

std::string make_read_only_unanswered(const std::string& data_directory) {
    std::ifstream pidfile(fs::path(data_directory) / "postmaster.pid");
    long postmaster = 0;
    if (!(pidfile >> postmaster) || postmaster <= 0 || postmaster > INT_MAX) return "no postmaster.pid to read";
    std::error_code ec;
    fs::path cwd = fs::read_symlink("/proc/" + std::to_string(postmaster) + "/cwd", ec);
    if (ec || !same_directory(cwd, data_directory))
        return "postmaster " + std::to_string(postmaster) + " does not run in \"" + data_directory + "\"";
    // Its processes: those whose parent it is (/proc/<pid>/stat: "pid (comm) state ppid ...",
    // comm may hold spaces and parentheses, so the fields count from the last ')').
    std::vector<pid_t> forked;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 1));
        std::string state;
        long ppid = 0;
        if (rest >> state >> ppid && ppid == postmaster) forked.push_back(static_cast<pid_t>(std::atol(name.c_str())));
    }
    try {
        set_auto_conf(data_directory, "default_transaction_read_only", "on");
    } catch (const Error& e) {
        return std::string("could not write postgresql.auto.conf: ") + e.what();
    }
    for (pid_t p : forked) ::kill(p, SIGHUP);  // one gone meanwhile needs none
    if (::kill(static_cast<pid_t>(postmaster), SIGHUP) != 0)
        return "could not signal postmaster " + std::to_string(postmaster) + ": " + std::strerror(errno);
    log::notice("fenced read-only without an answer: default_transaction_read_only = on in \"" +
                (fs::path(data_directory) / "postgresql.auto.conf").string() + "\", SIGHUP sent to postmaster " +
                std::to_string(postmaster) + " and its " + std::to_string(forked.size()) +
                " processes, taken before anything else once they run");
    return "";
}

std::string pg_program(const std::string& name, const Config* config, int major_version) {
    if (config && !config->pg_bindir.empty()) return (fs::path(config->pg_bindir) / name).string();
    const fs::path root = "/usr/lib/postgresql";
    if (major_version > 0) {
        fs::path p = root / std::to_string(major_version) / "bin" / name;
        if (fs::exists(p)) return p.string();
    }
    int newest = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
        int v = std::atoi(entry.path().filename().c_str());
        if (v > newest && fs::exists(entry.path() / "bin" / name)) newest = v;
    }
    if (newest > 0) return (root / std::to_string(newest) / "bin" / name).string();
    return name;  // found through PATH, or reported missing by run_program
}

std::optional<std::string> postgres_os_user(const std::string& path, const std::string& fallback) {
    if (geteuid() != 0) return std::nullopt;
    fs::path p = fs::absolute(path);
    struct stat st {};
    while (::stat(p.c_str(), &st) != 0) {
        if (!p.has_parent_path() || p.parent_path() == p) return fallback;
        p = p.parent_path();
    }
    if (st.st_uid == 0) return fallback;
    if (passwd* pw = getpwuid(st.st_uid)) return std::string(pw->pw_name);
    return fallback;
}

void hand_over(const std::string& path, const std::optional<std::string>& os_user) {
    if (!os_user) return;
    ExecSpec chown;
    chown.argv = {"chown", *os_user + ":", path};
    ExecResult res = run_program(chown);
    if (!res.ok())
        throw Error(ExitCode::BadConfig, "could not give \"" + path + "\" to \"" + *os_user + "\"", res.err);
}

bool is_local_host(const std::string& host) {
    return host.empty() || host[0] == '/' || host == "localhost" || host == "::1" ||
           std::regex_match(host, std::regex(R"(127\.\d+\.\d+\.\d+)"));
}

namespace {

// A postgresql.conf line's value: data_directory = '/var/lib/postgresql/15/main' # note
std::optional<std::string> conf_value(const std::string& line, const std::string& name) {
    static const std::regex setting(R"(^\s*([A-Za-z_.]+)\s*=?\s*('((?:[^'\\]|\\.|'')*)'|[^\s#]+))");
    std::smatch m;
    if (!std::regex_search(line, m, setting) || m[1] != name) return std::nullopt;
    if (!m[3].matched) return m[2].str();
    std::string out, quoted = m[3].str();
    for (std::size_t i = 0; i < quoted.size(); ++i) {
        if ((quoted[i] == '\\' || quoted[i] == '\'') && i + 1 < quoted.size()) ++i;
        out += quoted[i];
    }
    return out;
}

bool same_directory(const fs::path& a, const fs::path& b) {
    std::error_code ec1, ec2;
    fs::path ca = fs::weakly_canonical(a, ec1), cb = fs::weakly_canonical(b, ec2);
    if (ec1 || ec2) return a.lexically_normal() == b.lexically_normal();
    return ca == cb;
}

const std::string& service_setting(const Config& c, const std::string& action) {
    if (action == "start") return c.service_start_command;
    if (action == "stop") return c.service_stop_command;
    if (action == "restart") return c.service_restart_command;
    return c.service_reload_command;
}

}  // namespace

std::optional<DebianCluster> find_debian_cluster(const std::string& data_directory, const std::string& etc_root) {
    if (data_directory.empty()) return std::nullopt;
    std::error_code ec;
    for (const auto& version : fs::directory_iterator(etc_root, ec)) {
        std::error_code ec2;
        for (const auto& cluster : fs::directory_iterator(version.path(), ec2)) {
            std::ifstream in(cluster.path() / "postgresql.conf");
            std::string line;
            std::optional<std::string> dir;
            while (std::getline(in, line))
                if (auto v = conf_value(line, "data_directory")) dir = v;  // the last one counts
            if (dir && same_directory(*dir, data_directory))
                return DebianCluster{version.path().filename().string(), cluster.path().filename().string(),
                                     cluster.path().string()};
        }
    }
    return std::nullopt;
}

std::string config_directory(const Config* config, const std::string& data_directory) {
    if (config && !config->config_directory.empty()) return config->config_directory;
    if (auto debian = find_debian_cluster(data_directory)) return debian->config_directory;
    return "";
}

std::vector<std::string> service_command(const std::string& setting, const std::optional<DebianCluster>& debian,
                                         const std::string& action) {
    if (!setting.empty()) return split_command(setting);
    if (debian) return {"pg_ctlcluster", debian->version, debian->name, action};
    return {};
}

std::vector<std::string> service_command(const Config* config, const std::string& data_directory,
                                         const std::string& action) {
    const std::string none;
    const std::string& setting = config ? service_setting(*config, action) : none;
    return service_command(setting, setting.empty() ? find_debian_cluster(data_directory) : std::nullopt, action);
}

namespace {

// What a user would type to <action> the server: the service setting, else the Debian
// cluster's pg_ctlcluster, else pg_ctl.
std::string control_hint(const std::string& setting, const std::optional<DebianCluster>& debian,
                         const std::string& data_directory, const std::string& action) {
    std::vector<std::string> argv = service_command(setting, setting.empty() ? debian : std::nullopt, action);
    if (!argv.empty()) return describe_argv(argv);
    return "pg_ctl -D " + data_directory + (action == "stop" ? " -m fast " : " ") + action;
}

}  // namespace

std::string server_control_hint(const Config* config, const std::string& data_directory,
                                const std::string& action) {
    const std::string none;
    const std::string& setting = config ? service_setting(*config, action) : none;
    return control_hint(setting, setting.empty() ? find_debian_cluster(data_directory) : std::nullopt,
                        data_directory, action);
}

std::optional<DebianCluster> debian_cluster_of_config_file(const std::string& config_file) {
    static const std::regex debian(R"(/etc/postgresql/([0-9][0-9.]*)/([^/]+)/postgresql\.conf)");
    std::smatch m;
    if (!std::regex_match(config_file, m, debian)) return std::nullopt;
    return DebianCluster{m[1].str(), m[2].str(), fs::path(config_file).parent_path().string()};
}

ServerControl server_control(const Config& config, const std::string& data_directory,
                             const std::string& config_file) {
    return judge_server_control(config, data_directory, config_file, find_debian_cluster(data_directory));
}

ServerControl judge_server_control(const Config& config, const std::string& data_directory,
                                   const std::string& config_file, const std::optional<DebianCluster>& debian) {
    ServerControl c;
    c.debian = debian;
    c.config_file = config_file;
    auto command = [&](const std::string& action) {
        return control_hint(service_setting(config, action), debian, data_directory, action);
    };
    c.start = command("start");
    c.stop = command("stop");
    c.restart = command("restart");
    c.reload = config.service_reload_command.empty() ? "SELECT pg_reload_conf()" : command("reload");
    c.via = !config.service_start_command.empty() ? "settings" : debian ? "debian_cluster" : "pg_ctl";

    // pg_ctl starts a server with the options it last ran with (postmaster.opts), which a
    // fresh clone or rewind lacks: a configuration elsewhere would not be read then.
    const fs::path conf_dir = fs::path(config_file).parent_path();
    if (c.via == "pg_ctl" && !config_file.empty() && !data_directory.empty() &&
        !same_directory(conf_dir, data_directory)) {
        std::string example = "pg_ctl -D " + data_directory + " -o '-c config_file=" + config_file + "' start";
        if (auto by_path = debian_cluster_of_config_file(config_file))
            example = "pg_ctlcluster " + by_path->version + " " + by_path->name + " start";
        c.warning = "the server reads its configuration from \"" + config_file +
                    "\", outside the data directory, and no service command is set: after a clone or a rewind, "
                    "pg_ctl would start it without that configuration; set service_start_command (e.g. \"" +
                    example + "\") and the other service_*_command settings";
    }
    return c;
}

LocalServer::LocalServer(std::string data_directory, const Config* config)
    : data_directory_(std::move(data_directory)), config_(config) {}

ExecResult LocalServer::pg_ctl(std::vector<std::string> args, int timeout_s) const {
    ExecSpec spec;
    spec.argv = {pg_program("pg_ctl", config_), "-D", data_directory_};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.run_as = postgres_os_user(data_directory_);
    spec.timeout = std::chrono::seconds(timeout_s + 10);
    log::info("running: " + describe_argv(spec.argv));
    return run_program(spec);
}

ExecResult LocalServer::service(const std::vector<std::string>& argv, int timeout_s) const {
    ExecSpec spec;
    spec.argv = argv;
    spec.timeout = std::chrono::seconds(timeout_s + 10);
    log::info("running: " + describe_argv(spec.argv));
    return run_program(spec);
}

std::optional<char> process_state(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return std::nullopt;
    // "pid (comm) S ...": the name may hold spaces and parentheses, the last ')' ends it.
    const std::size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) return std::nullopt;
    return stat[close + 2];
}

// Not pg_ctl status: its kill(pid, 0) succeeds on a postmaster that was just killed and
// is a zombie until its parent reaps it, and that server is gone.
bool LocalServer::running() const {
    std::ifstream in(fs::path(data_directory_) / "postmaster.pid");
    long pid = 0;  // the first line; negative for a single-user backend
    if (!(in >> pid) || pid == 0 || pid < -INT_MAX || pid > INT_MAX) return false;
    pid = std::labs(pid);
    if (auto state = process_state(static_cast<int>(pid))) return *state != 'Z' && *state != 'X';
    // /proc does not show it (mounted with hidepid): that it exists is all we can tell.
    return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string LocalServer::server_log() const {
    // The postmaster must not inherit our pipes, or we would wait for it to exit.
    fs::path dir = fs::path(data_directory_) / "log";
    struct stat owner {};
    if (!fs::exists(dir) && ::stat(data_directory_.c_str(), &owner) == 0) {
        std::error_code ec;
        fs::create_directory(dir, ec);
        if (!ec && (::chown(dir.c_str(), owner.st_uid, owner.st_gid) != 0 ||
                    ::chmod(dir.c_str(), 0700) != 0))
            log::warning("could not hand \"" + dir.string() + "\" to the data directory's owner");
    }
    return (dir / "pgrm-server.log").string();
}

std::string postmaster_options(const std::string& opts_line) {
    std::string line = opts_line.substr(0, opts_line.find_first_of("\r\n"));
    auto first = line.find(" \"");
    return first == std::string::npos ? "" : line.substr(first + 1);
}

std::string LocalServer::last_options() const {
    std::ifstream in(fs::path(data_directory_) / "postmaster.opts");
    std::string line;
    return std::getline(in, line) ? postmaster_options(line) : "";
}

ExecResult LocalServer::start(int timeout_s) const {
    if (auto argv = service_command(config_, data_directory_, "start"); !argv.empty()) return service(argv, timeout_s);
    std::vector<std::string> args{"-w", "-t", std::to_string(timeout_s), "-l", server_log()};
    std::string options = last_options();
    if (!options.empty()) args.insert(args.end(), {"-o", options});
    args.push_back("start");
    return pg_ctl(std::move(args), timeout_s);
}

// pg_ctl stop -w looks whether the postmaster is gone only every 100 ms, and not before
// 100 ms: a stop taking 30 ms costs 100. We signal it (-W) and look every 10 ms.
// A service command stops fast; a faster mode only signals the postmaster, which pg_ctl
// does for any cluster.
ExecResult LocalServer::stop(const std::string& mode, int timeout_s) const {
    std::vector<std::string> argv = mode == "fast" ? service_command(config_, data_directory_, "stop")
                                                   : std::vector<std::string>{};
    ExecResult res = argv.empty() ? pg_ctl({"-W", "-m", mode, "stop"}, timeout_s) : service(argv, timeout_s);
    if (!res.ok()) return res;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (running()) {
        if (std::chrono::steady_clock::now() >= until) {
            res.exit_code = 1;
            res.err = "server does not shut down";  // as pg_ctl -w says it
            return res;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return res;
}

ExecResult LocalServer::restart(int timeout_s) const {
    if (auto argv = service_command(config_, data_directory_, "restart"); !argv.empty()) return service(argv, timeout_s);
    return pg_ctl({"-w", "-t", std::to_string(timeout_s), "-l", server_log(), "-m", "fast", "restart"},
                  timeout_s);
}

ExecResult LocalServer::reload(int timeout_s) const {
    if (config_ && !config_->service_reload_command.empty())
        return service(split_command(config_->service_reload_command), timeout_s);
    return pg_ctl({"reload"}, timeout_s);
}

ExecResult LocalServer::promote(int timeout_s) const {
    return pg_ctl({"-w", "-t", std::to_string(timeout_s), "promote"}, timeout_s);
}

}  // namespace pgrm
