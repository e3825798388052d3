// pgrm demo [start|status|stop]: a three-node cluster on loopback, built by pgrm's own
// commands (master register, standby clone, standby register) and watched by a repmgrd
// per node with automatic failover, for trying pgrm out.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/recovery.hpp"
#include "core/result.hpp"
#include "core/server.hpp"
#include "plugins/plugins.hpp"

namespace pgrm {

namespace fs = std::filesystem;

namespace {

constexpr int kNodes = 3;
constexpr int kFirstPort = 25432;   // below the ephemeral range (32768+): no collisions
const char* const kStateFile = "pgrm-demo.json";

std::string default_dir() {
    const char* tmp = std::getenv("TMPDIR");
    return (fs::path(tmp && *tmp ? tmp : "/tmp") / "pgrm-demo").string();
}

bool port_free(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

// kNodes consecutive free ports from first, else further up, staying below 32768.
int free_port_block(int first) {
    for (int base = first; base + kNodes < 32768; base += kNodes) {
        bool all = true;
        for (int i = 0; i < kNodes && all; ++i) all = port_free(base + i);
        if (all) return base;
    }
    throw Error(ExitCode::BadConfig, "no free block of loopback ports below 32768");
}

// The demo's own record of its nodes, so status and stop find them.
struct DemoNode {
    int id;
    std::string name, data_dir, config;
    int port;
    std::string daemon_pid_file() const { return data_dir + "-repmgrd.pid"; }
    std::string daemon_log() const { return data_dir + "-repmgrd.log"; }
};

// The pid of the repmgrd holding n's pid file locked; nullopt when none runs. A daemon
// that has just started holds the lock before it writes its pid: wait a moment for it.
std::optional<pid_t> running_daemon(const DemoNode& n) {
    int fd = ::open(n.daemon_pid_file().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    pid_t pid = 0;
    for (int tries = 0; tries < 20 && pid <= 0; ++tries) {
        if (::flock(fd, LOCK_SH | LOCK_NB) == 0) break;  // not locked: no daemon
        char buf[32] = {};
        if (::pread(fd, buf, sizeof buf - 1, 0) > 0) pid = static_cast<pid_t>(std::atol(buf));
        if (pid <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::close(fd);
    return pid > 0 ? std::optional(pid) : std::nullopt;
}

std::vector<DemoNode> read_state(const std::string& dir) {
    std::ifstream in(fs::path(dir) / kStateFile);
    if (!in)
        throw Error(ExitCode::BadConfig, "no demo cluster in \"" + dir + "\"", "",
                    "create one with \"pgrm demo\"");
    nlohmann::json j = nlohmann::json::parse(in);
    std::vector<DemoNode> nodes;
    for (const auto& n : j.at("nodes"))
        nodes.push_back({n.at("id"), n.at("name"), n.at("data_dir"), n.at("config"), n.at("port")});
    return nodes;
}

// Runs pgrm itself (as /proc/self/exe, never whatever is on PATH) as persona
// (repmgr or repmgrd).
ExecResult run_self(const Context& ctx, const std::string& persona, std::vector<std::string> args) {
    ExecSpec spec;
    spec.argv = {ctx.self_exe, persona};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    log::info("running: " + describe_argv(spec.argv));
    ExecResult res = run_program(spec);
    if (!res.ok())
        throw Error(static_cast<ExitCode>(res.exit_code > 0 && res.exit_code <= 9 ? res.exit_code : 1),
                    "demo step failed: " + persona + " " + describe_argv(args), res.err);
    return res;
}

ExecResult run_pg(const std::string& program, std::vector<std::string> args,
                  const std::optional<std::string>& os_user) {
    ExecSpec spec;
    spec.argv = {pg_program(program, nullptr)};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.run_as = os_user;
    spec.timeout = std::chrono::minutes(5);
    log::info("running: " + describe_argv(spec.argv));
    ExecResult res = run_program(spec);
    if (!res.ok())
        throw Error(ExitCode::BadConfig, program + " failed with exit code " + std::to_string(res.exit_code),
                    res.err.empty() ? res.out : res.err);
    return res;
}

void start_server(const DemoNode& n, const std::optional<std::string>& os_user) {
    run_pg("pg_ctl", {"-D", n.data_dir, "-l", n.data_dir + ".log", "-w", "-t", "60", "start"}, os_user);
}

class DemoStart : public Command {
public:
    Spec spec() const override {
        return {"demo", "", "", "creates and starts a local demo cluster: a primary and two standbys",
                PersonaPgrm, NeedsNothing, {}};
    }

    void declare(CLI::App& app) override {
        app.add_option("--dir", dir_, "directory for the demo (default: $TMPDIR/pgrm-demo)");
        app.add_option("--port", port_, "first of three loopback ports (default: 25432 or the next free)")
            ->check(CLI::Range(1024, 32760));
    }

    Result run(Context& ctx) override {
        std::string dir = fs::absolute(dir_.empty() ? default_dir() : dir_).string();
        if (fs::exists(fs::path(dir) / kStateFile))
            throw Error(ExitCode::BadConfig, "a demo cluster already exists in \"" + dir + "\"", "",
                        "see it with \"pgrm demo status\", remove it with \"pgrm demo stop\"");
        if (fs::exists(dir) && !fs::is_empty(dir))
            throw Error(ExitCode::BadConfig, "\"" + dir + "\" exists and is not empty", "",
                        "give another directory with --dir");

        // 1. A directory the PostgreSQL user owns, and three free ports.
        fs::create_directories(dir);
        // PostgreSQL refuses root: then the servers run as postgres.
        std::optional<std::string> os_user;
        if (geteuid() == 0) os_user = "postgres";
        if (os_user) {
            ExecSpec chown;
            chown.argv = {"chown", *os_user + ":", dir};
            if (!run_program(chown).ok())
                throw Error(ExitCode::BadConfig, "could not give \"" + dir + "\" to \"" + *os_user + "\"");
        }
        int base = free_port_block(port_ > 0 ? port_ : kFirstPort);
        std::vector<DemoNode> nodes;
        nlohmann::json state = {{"nodes", nlohmann::json::array()}};
        for (int i = 0; i < kNodes; ++i) {
            DemoNode n{i + 1, "node" + std::to_string(i + 1), dir + "/node" + std::to_string(i + 1),
                       dir + "/node" + std::to_string(i + 1) + ".conf", base + i};
            nodes.push_back(n);
            std::ofstream(n.config) << "cluster=demo\nnode=" << n.id << "\nnode_name=" << n.name
                                    << "\nconninfo='host=127.0.0.1 port=" << n.port
                                    << " user=postgres dbname=pgbench'\ndata_directory='" << n.data_dir << "'\n"
                                    << "log_file='" << n.daemon_log() << "'\n"
                                    << "# repmgrd: fail over on its own, within seconds rather than a minute\n"
                                    << "failover=automatic\nmonitor_interval_secs=2\n"
                                    << "reconnect_attempts=3\nreconnect_interval=2\n";
            state["nodes"].push_back({{"id", n.id}, {"name", n.name}, {"data_dir", n.data_dir},
                                      {"config", n.config}, {"port", n.port}});
        }
        std::ofstream(fs::path(dir) / kStateFile) << dump_json(state) << '\n';

        // 2. The primary, with pgbench data.
        const DemoNode& p = nodes[0];
        log::notice("demo: creating node1 (primary) on port " + std::to_string(p.port));
        run_pg("initdb", {"-D", p.data_dir, "-A", "trust", "-U", "postgres", "--data-checksums"}, os_user);
        std::ofstream(p.data_dir + "/postgresql.conf", std::ios::app)
            << "\n# pgrm demo\nlisten_addresses = '127.0.0.1'\nport = " << p.port
            << "\nunix_socket_directories = '" << dir << "'\nwal_level = replica\n"
            << "max_wal_senders = 10\nmax_replication_slots = 10\nhot_standby = on\n"
            << "wal_log_hints = on\nwal_keep_size = '512MB'\n";
        start_server(p, os_user);
        std::string port = std::to_string(p.port);
        run_pg("psql", {"-X", "-q", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "postgres",
                        "-c", "CREATE DATABASE pgbench"}, os_user);
        run_pg("pgbench", {"-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "pgbench"},
               os_user);

        // 3. Everything else with pgrm's own commands, exactly as a user types them.
        run_self(ctx, "repmgr", {"-f", p.config, "master", "register"});
        for (int i = 1; i < kNodes; ++i) {
            const DemoNode& s = nodes[i];
            log::notice("demo: cloning " + s.name + " with \"repmgr standby clone\", port " + std::to_string(s.port));
            run_self(ctx, "repmgr", {"-D", s.data_dir, "-d", "pgbench", "-h", "127.0.0.1", "-p", port, "-U",
                           "postgres", "-f", s.config, "standby", "clone"});
            set_auto_conf(s.data_dir, "port", std::to_string(s.port));
            start_server(s, os_user);
            run_self(ctx, "repmgr", {"-f", s.config, "standby", "register"});
        }

        // 4. A repmgrd per node, detached, each holding its pid file.
        for (const DemoNode& n : nodes) {
            log::notice("demo: starting repmgrd for " + n.name);
            run_self(ctx, "repmgrd", {"-f", n.config, "-d", "--pid-file", n.daemon_pid_file()});
        }

        Result r = status_result(ctx, dir);
        r.lines.insert(r.lines.end(), {
            "",
            "connect:   psql -h 127.0.0.1 -p " + port + " -U postgres pgbench",
            "lag:       psql -h 127.0.0.1 -p " + port +
                " -U postgres pgbench -c 'SELECT * FROM repmgr_demo.repl_status'",
            "failover:  stop node1 (pg_ctl -D " + p.data_dir + " -m immediate stop" +
                (os_user ? ", as " + *os_user : std::string()) + ") and watch repmgr -f " + nodes[1].config +
                " cluster show; the daemons log to " + dir + "/node{1,2,3}-repmgrd.log",
            "rejoin:    then node1 back as a standby, asking node2 for the cluster: repmgr -f " + p.config +
                " node rejoin -h 127.0.0.1 -p " + std::to_string(nodes[1].port),
            "switchover: or, planned, node2 the primary and node1 its standby, losing nothing (try --dry-run "
            "first): repmgr -f " + nodes[1].config + " standby switchover",
            "configs:   " + dir + "/node{1,2,3}.conf   (e.g. repmgr -f " + p.config + " cluster show)",
            "status:    pgrm demo status" + dir_option(),
            "stop:      pgrm demo stop" + dir_option(),
        });
        r.summary = "demo cluster \"demo\" is up in " + dir + ": node1 primary on port " + port +
                    ", node2 and node3 standbys on " + std::to_string(base + 1) + " and " +
                    std::to_string(base + 2);
        return r;
    }

    // The demo's picture of itself: cluster show, and which daemons run.
    static Result status_result(const Context& ctx, const std::string& dir) {
        std::vector<DemoNode> nodes = read_state(dir);
        Result r = cluster_show(ctx, dir, nodes);
        nlohmann::json daemons = nlohmann::json::object();
        std::string line = "repmgrd:";
        for (const auto& n : nodes) {
            auto pid = running_daemon(n);
            daemons[n.name] = pid ? nlohmann::json(*pid) : nullptr;
            line += " " + n.name + (pid ? " running (pid " + std::to_string(*pid) + ")" : " not running") + ";";
        }
        line.pop_back();
        r.data["repmgrd_pids"] = daemons;
        r.lines.push_back(line);
        return r;
    }

    // cluster show, through pgrm itself, from the first node that answers.
    static Result cluster_show(const Context& ctx, const std::string& dir, const std::vector<DemoNode>& nodes) {
        Result r;
        for (const auto& n : nodes) {
            try {
                ExecResult show = run_self(ctx, "repmgr", {"-f", n.config, "cluster", "show", "--json"});
                nlohmann::json doc = nlohmann::json::parse(show.out);
                r.data = doc["data"];
                r.data["dir"] = dir;
                ExecResult text = run_self(ctx, "repmgr", {"-f", n.config, "cluster", "show"});
                r.lines.push_back(text.out.substr(0, text.out.find_last_not_of('\n') + 1));
                return r;
            } catch (const Error&) {
                continue;  // this node is down; ask the next one
            }
        }
        r.data = {{"dir", dir}, {"nodes", nlohmann::json::array()}};
        r.summary = "no demo node answers in " + dir;
        return r;
    }

private:
    std::string dir_;
    int port_ = 0;
    std::string dir_option() const { return dir_.empty() ? "" : " --dir " + dir_; }
};

class DemoStatus : public Command {
public:
    Spec spec() const override {
        return {"demo", "status", "", "shows the demo cluster", PersonaPgrm, NeedsNothing, {}};
    }
    void declare(CLI::App& app) override {
        app.add_option("--dir", dir_, "the demo's directory (default: $TMPDIR/pgrm-demo)");
    }
    Result run(Context& ctx) override {
        return DemoStart::status_result(ctx, fs::absolute(dir_.empty() ? default_dir() : dir_).string());
    }

private:
    std::string dir_;
};

class DemoStop : public Command {
public:
    Spec spec() const override {
        return {"demo", "stop", "", "stops the demo cluster and removes its directory", PersonaPgrm,
                NeedsNothing, {}};
    }
    void declare(CLI::App& app) override {
        app.add_option("--dir", dir_, "the demo's directory (default: $TMPDIR/pgrm-demo)");
        app.add_flag("--keep", keep_, "stop the servers but keep the files");
    }
    Result run(Context&) override {
        std::string dir = fs::absolute(dir_.empty() ? default_dir() : dir_).string();
        std::vector<DemoNode> nodes = read_state(dir);  // refuses a directory that is not a demo
        Result r;
        // The daemons first: with the servers going down one by one they would fail over.
        for (const auto& n : nodes) {
            auto pid = running_daemon(n);
            if (!pid) continue;
            ::kill(*pid, SIGTERM);
            auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (running_daemon(n) && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            if (running_daemon(n))
                throw Error(ExitCode::BadConfig, "repmgrd for " + n.name + " (pid " + std::to_string(*pid) +
                                                     ") did not stop within 10 s; the servers were left running");
            r.lines.push_back("stopped repmgrd for " + n.name);
        }
        for (const auto& n : nodes) {
            LocalServer server(n.data_dir, nullptr);
            if (fs::exists(n.data_dir) && server.running()) {
                server.stop("fast", 60);
                r.lines.push_back("stopped " + n.name);
            }
        }
        if (!keep_) fs::remove_all(dir);
        r.data = {{"dir", dir}, {"removed", !keep_}};
        r.summary = keep_ ? "demo stopped; files kept in " + dir : "demo stopped and " + dir + " removed";
        return r;
    }

private:
    std::string dir_;
    bool keep_ = false;
};

}  // namespace

void register_demo(Registry& registry) {
    registry.add(std::make_unique<DemoStart>());
    registry.add(std::make_unique<DemoStatus>());
    registry.add(std::make_unique<DemoStop>());
}

}  // namespace pgrm
