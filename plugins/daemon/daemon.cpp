// repmgrd (= pgrm daemon): runs the monitoring loop in the foreground (systemd), or
// detached with -d/--daemonize; one per node, held by a locked pid file.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/conninfo.hpp"
#include "core/daemon_socket.hpp"
#include "core/error.hpp"
#include "core/event.hpp"
#include "core/log.hpp"
#include "core/timeouts.hpp"
#include "plugins/daemon/http.hpp"
#include "plugins/daemon/monitor.hpp"
#include "plugins/plugins.hpp"

namespace pgrm {

namespace {

daemon::Signals* g_signals = nullptr;
using daemon::iso_utc;

extern "C" void on_signal(int sig) {
    if (!g_signals) return;
    if (sig == SIGHUP) g_signals->reload = true;
    else g_signals->stop = true;
}

// Holds the lock for the process's life: a second daemon on the node is refused. Never
// through a symbolic link (run as root, the daemon would truncate whatever file it names),
// never waiting on a FIFO, and only a regular file: nothing is written before that is known.
int lock_pid_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0 && errno == ELOOP)
        throw Error(ExitCode::BadConfig, "pid file \"" + path + "\" is a symbolic link", "",
                    "name the file itself");
    if (fd < 0 && errno == EISDIR)
        throw Error(ExitCode::BadConfig, "pid file \"" + path + "\" is not a regular file");
    if (fd < 0)
        throw Error(ExitCode::BadConfig, "could not open pid file \"" + path + "\": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(ExitCode::BadConfig, "pid file \"" + path + "\" is not a regular file");
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = {};
        ssize_t n = ::read(fd, buf, sizeof buf - 1);
        ::close(fd);
        throw Error(ExitCode::BadConfig, "repmgrd is already running for this node" +
                                             (n > 0 ? std::string(" (pid ") + std::string(buf, strcspn(buf, "\n")) + ")" : ""),
                    "pid file \"" + path + "\" is locked");
    }
    // Empty until write_pid: a stale pid from an earlier run must never be read as ours.
    if (::ftruncate(fd, 0) != 0)
        throw Error(ExitCode::BadConfig, "could not truncate pid file \"" + path + "\": " + std::strerror(errno));
    return fd;
}

// What the daemon answers on its socket: who it is, and its state machine's snapshot.
nlohmann::json state_json(const Config& cfg, std::chrono::system_clock::time_point started,
                          const daemon::Snapshot& snap) {
    nlohmann::json j = {{"pid", ::getpid()},
                        {"cluster", cfg.cluster},
                        {"node_id", cfg.node},
                        {"started_at", iso_utc(started)},
                        {"state", std::string(daemon::state_name(snap.state))},
                        {"since", iso_utc(snap.since)},
                        {"reason", redact_secrets(snap.reason)}};
    j["upstream_node_id"] = snap.upstream ? nlohmann::json(*snap.upstream) : nlohmann::json(nullptr);
    j["paused"] = snap.paused;
    j["pause_overridden"] = snap.pause_overridden;
    bool passed = snap.last_pass.time_since_epoch().count() != 0;
    j["last_pass"] = passed ? nlohmann::json(iso_utc(snap.last_pass)) : nlohmann::json(nullptr);
    return j;
}

// The one request the socket takes, from "service unpause" when no primary can be written
// to: {"request": "resume_failover", "generation": N}, go on despite pause N.
nlohmann::json handle_request(daemon::Monitor& monitor, const nlohmann::json& request) {
    auto what = request.find("request");
    auto generation = request.find("generation");
    if (what == request.end() || *what != "resume_failover" || generation == request.end() ||
        !generation->is_number_integer())
        return {{"error", "unknown request"}};
    monitor.resume_failover(generation->get<long long>());
    log::notice("asked to go on with failover despite failover pause " + generation->dump() +
                " (\"repmgr service unpause\" found no primary to write to)");
    return {{"accepted", true}};
}

// Answers node status, node check, service status and service unpause on the node's socket
// (core/daemon_socket), from a thread of its own until destroyed: each connection gets one
// JSON line, state(), and an answer from handle to a request it sends then.
class StatusAnswerer {
public:
    StatusAnswerer(int listen_fd, std::function<nlohmann::json()> state, DaemonRequestHandler handle)
        : fd_(listen_fd), wake_(::eventfd(0, EFD_CLOEXEC)), state_(std::move(state)), handle_(std::move(handle)) {
        if (wake_ < 0)
            throw Error(ExitCode::BadConfig, std::string("could not create an eventfd: ") + std::strerror(errno));
        thread_ = std::thread([this] { loop(); });
    }
    ~StatusAnswerer() {
        std::uint64_t one = 1;
        if (::write(wake_, &one, sizeof one) < 0) log::warning("could not stop the status thread");
        thread_.join();
        ::close(wake_);
    }
    StatusAnswerer(const StatusAnswerer&) = delete;
    StatusAnswerer& operator=(const StatusAnswerer&) = delete;

private:
    void loop() {
        // The signals are the main loop's: their flags are read there.
        sigset_t mask;
        sigemptyset(&mask);
        for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
        ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
        for (;;) {
            pollfd p[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                log::warning(std::string("status socket: ") + std::strerror(errno));
                return;
            }
            if (p[1].revents) return;
            if (p[0].revents & POLLIN) answer_daemon_client(fd_, state_(), std::chrono::seconds(1), handle_);
        }
    }

    int fd_;
    int wake_;
    std::function<nlohmann::json()> state_;
    DaemonRequestHandler handle_;
    std::thread thread_;
};

// Into the file lock_pid_file emptied.
void write_pid(int fd) {
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::pwrite(fd, pid.data(), pid.size(), 0) < 0)
        log::warning(std::string("could not write the pid file: ") + std::strerror(errno));
}

class Daemon : public Command {
public:
    Spec spec() const override {
        return {"daemon", "", "", "monitors the cluster, records lag, and manages failover (repmgrd)",
                PersonaRepmgrd | PersonaPgrm, NeedsConfig | LongRunning, {}};
    }

    void declare(CLI::App& app) override {
        app.add_flag("-d,--daemonize", daemonize_, "detach and run in the background");
        app.add_option("--pid-file", pid_file_, "lock file holding the daemon's pid (one daemon per node)");
    }

    Result run(Context& ctx) override {
        Config cfg = ctx.cfg();
        if (!cfg.log_file.empty()) log::set_file(cfg.log_file);
        if (daemonize_ && cfg.log_file.empty())
            log::warning("daemonized without log_file: log lines are lost");

        // A leader key's lease its holder could renew (dcs = etcd), before anything starts.
        timeouts::check_etcd_lease(cfg);

        // 1. One daemon per node: its socket, held for the process's life.
        int node_lock = listen_daemon_socket(cfg);
        int pid_fd = pid_file_.empty() ? -1 : lock_pid_file(pid_file_);
        // Bound now, so that an address in use stops the daemon before it detaches.
        int http_fd = cfg.http_listen.empty() ? -1 : daemon::listen_http(cfg.http_listen);

        // 2. Detach, for classic init.
        if (daemonize_) {
            if (::daemon(1, 0) != 0)
                throw Error(ExitCode::BadConfig, std::string("could not daemonize: ") + std::strerror(errno));
        }
        if (pid_fd >= 0) write_pid(pid_fd);

        // 3. Signals only set flags; the loop acts on them.
        daemon::Signals signals;
        g_signals = &signals;
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &sa, nullptr);

        // 4. The loop, answering node status meanwhile, its event notifications run on a
        //    thread of their own (after detaching: threads do not survive a fork).
        BackgroundNotifications notifications;
        daemon::Monitor monitor(cfg, ctx.self_exe, signals, ctx.options.verbose);
        auto started = std::chrono::system_clock::now();
        ExitCode code;
        {
            StatusAnswerer answerer(
                node_lock, [&cfg, &monitor, started] { return state_json(cfg, started, monitor.snapshot()); },
                [&monitor](const nlohmann::json& request) { return handle_request(monitor, request); });
            std::optional<daemon::HttpServer> http;
            if (http_fd >= 0) {
                http.emplace(http_fd, cfg, [&monitor] { return monitor.snapshot(); },
                             [&cfg, &monitor, started] { return state_json(cfg, started, monitor.snapshot()); });
                log::notice("HTTP endpoint listening on " + cfg.http_listen);
            }
            code = monitor.run();
        }
        g_signals = nullptr;
        if (pid_fd >= 0) {
            ::unlink(pid_file_.c_str());
            ::close(pid_fd);
        }
        ::close(node_lock);
        Result r;
        r.exit_code = code;
        r.summary = code == ExitCode::Promoted ? "repmgrd: this standby was promoted; exiting" : "";
        return r;
    }

private:
    bool daemonize_ = false;
    std::string pid_file_;
};

}  // namespace

void register_daemon(Registry& registry) {
    registry.add(std::make_unique<Daemon>());
}

}  // namespace pgrm
