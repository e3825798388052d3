// repmgrd (= pgrm daemon): runs the monitoring loop in the foreground (systemd), or
// detached with -d/--daemonize; one per node, held by a locked pid file.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/log.hpp"
#include "plugins/daemon/monitor.hpp"
#include "plugins/plugins.hpp"

namespace pgrm {

namespace {

daemon::Signals* g_signals = nullptr;

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

// One daemon per node on this host, pid file or not: an abstract Unix socket named
// after the cluster, the node and its server (data directory, else conninfo) is bound
// for the process's life and vanishes with it. Two demo clusters of the same name in
// different directories are different nodes.
int lock_node(const Config& cfg) {
    std::error_code ec;
    std::string server = cfg.data_directory.empty()
                             ? cfg.conninfo
                             : std::filesystem::weakly_canonical(cfg.data_directory, ec).string();
    std::string name = "pgrm-repmgrd/" + std::to_string(std::hash<std::string>{}(
                                             cfg.cluster + '\n' + std::to_string(cfg.node) + '\n' + server));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw Error(ExitCode::BadConfig, std::string("could not create a socket: ") + std::strerror(errno));
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
        int err = errno;
        ::close(fd);
        if (err == EADDRINUSE)
            throw Error(ExitCode::BadConfig, "repmgrd is already running for node " + std::to_string(cfg.node) +
                                                 " of cluster \"" + cfg.cluster + "\" on this host");
        throw Error(ExitCode::BadConfig, std::string("could not take the node's lock: ") + std::strerror(err));
    }
    return fd;
}

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

        // 1. One daemon per node.
        int node_lock = lock_node(cfg);
        int pid_fd = pid_file_.empty() ? -1 : lock_pid_file(pid_file_);

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

        ExitCode code = daemon::Monitor(cfg, ctx.self_exe, signals, ctx.options.verbose).run();
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

void register_daemon(Registry& registry) { registry.add(std::make_unique<Daemon>()); }

}  // namespace pgrm
