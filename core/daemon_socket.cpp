#include "core/daemon_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>

#include "core/error.hpp"

namespace pgrm {

namespace {

// The abstract address (sun_path[0] = 0) and its length.
std::pair<sockaddr_un, socklen_t> address_of(const Config& cfg) {
    std::string name = daemon_socket_name(cfg);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), std::min(name.size(), sizeof addr.sun_path - 1));
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    return {addr, len};
}

// Closes the descriptor when it leaves scope.
struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::chrono::milliseconds left(std::chrono::steady_clock::time_point until) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
}

}  // namespace

std::string daemon_socket_name(const Config& cfg) {
    std::error_code ec;
    std::string server = cfg.data_directory.empty()
                             ? cfg.conninfo
                             : std::filesystem::weakly_canonical(cfg.data_directory, ec).string();
    return "pgrm-repmgrd/" + std::to_string(std::hash<std::string>{}(cfg.cluster + '\n' + std::to_string(cfg.node) +
                                                                      '\n' + server));
}

int listen_daemon_socket(const Config& cfg) {
    auto [addr, len] = address_of(cfg);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw Error(ExitCode::BadConfig, std::string("could not create a socket: ") + std::strerror(errno));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
        int err = errno;
        ::close(fd);
        if (err == EADDRINUSE)
            throw Error(ExitCode::BadConfig, "repmgrd is already running for node " + std::to_string(cfg.node) +
                                                 " of cluster \"" + cfg.cluster + "\" on this host");
        throw Error(ExitCode::BadConfig, std::string("could not take the node's lock: ") + std::strerror(err));
    }
    if (::listen(fd, 16) != 0) {
        int err = errno;
        ::close(fd);
        throw Error(ExitCode::BadConfig, std::string("could not listen on the node's socket: ") + std::strerror(err));
    }
    return fd;
}

DaemonReply ask_daemon(const Config& cfg, std::chrono::milliseconds timeout) {
    DaemonReply reply;
    auto until = std::chrono::steady_clock::now() + timeout;
    auto [addr, len] = address_of(cfg);
    Fd sock{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (sock.fd < 0) {
        reply.error = std::string("could not create a socket: ") + std::strerror(errno);
        return reply;
    }
    // A Unix socket connects at once or not at all: refused means nobody holds the name.
    if (::connect(sock.fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS &&
        errno != EAGAIN) {
        reply.error = errno == ECONNREFUSED ? "repmgrd is not running for this node"
                                            : std::string("could not reach repmgrd: ") + std::strerror(errno);
        return reply;
    }
    reply.running = true;  // bound: a daemon holds the node, whether or not it answers
    std::string line;
    char buf[4096];
    while (line.find('\n') == std::string::npos) {
        auto ms = left(until);
        if (ms.count() <= 0) {
            reply.error = "repmgrd did not answer within " + std::to_string(timeout.count()) + " ms";
            return reply;
        }
        pollfd pfd{sock.fd, POLLIN, 0};
        int n = ::poll(&pfd, 1, static_cast<int>(ms.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        ssize_t got = ::read(sock.fd, buf, sizeof buf);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) break;  // it hung up
        line.append(buf, static_cast<size_t>(got));
        if (line.size() > (1u << 20)) break;  // no state is that long
    }
    nlohmann::json state = nlohmann::json::parse(line.substr(0, line.find('\n')), nullptr, false);
    if (state.is_object())
        reply.state = std::move(state);
    else
        reply.error = "repmgrd's answer is not a JSON object";
    return reply;
}

void answer_daemon_client(int fd, const nlohmann::json& state, std::chrono::milliseconds timeout) {
    Fd client{::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC)};
    if (client.fd < 0) return;  // nobody waiting (EAGAIN), or gone already
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(client.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::string line = state.dump() + "\n";
    size_t sent = 0;
    while (sent < line.size()) {
        ssize_t n = ::send(client.fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        sent += static_cast<size_t>(n);
    }
}

}  // namespace pgrm
