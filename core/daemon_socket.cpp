#include "core/daemon_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
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

namespace {

enum class Read { Line, Timeout, Closed };

// The next line (without its '\n') into line; what came after it stays in buf.
Read read_line(int fd, std::string& buf, std::string& line, std::chrono::steady_clock::time_point until) {
    char chunk[4096];
    for (;;) {
        if (auto nl = buf.find('\n'); nl != std::string::npos) {
            line = buf.substr(0, nl);
            buf.erase(0, nl + 1);
            return Read::Line;
        }
        if (buf.size() > (1u << 20)) return Read::Closed;  // no line is that long
        auto ms = left(until);
        if (ms.count() <= 0) return Read::Timeout;
        pollfd pfd{fd, POLLIN, 0};
        int n = ::poll(&pfd, 1, static_cast<int>(ms.count()));
        if (n <= 0) continue;  // EINTR, or the time is up (checked above)
        ssize_t got = ::read(fd, chunk, sizeof chunk);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) return Read::Closed;
        buf.append(chunk, static_cast<size_t>(got));
    }
}

bool write_line(int fd, const nlohmann::json& doc, std::chrono::steady_clock::time_point until) {
    std::string line = doc.dump() + "\n";
    size_t sent = 0;
    while (sent < line.size()) {
        auto ms = left(until);
        if (ms.count() <= 0) return false;
        pollfd pfd{fd, POLLOUT, 0};
        if (::poll(&pfd, 1, static_cast<int>(ms.count())) <= 0) continue;
        ssize_t n = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return false;
        sent += static_cast<size_t>(n);
    }
    return true;
}

}  // namespace

DaemonReply ask_daemon(const Config& cfg, std::chrono::milliseconds timeout, const nlohmann::json& request) {
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
    std::string buf, line;
    if (read_line(sock.fd, buf, line, until) == Read::Timeout) {
        reply.error = "repmgrd did not answer within " + std::to_string(timeout.count()) + " ms";
        return reply;
    }
    nlohmann::json state = nlohmann::json::parse(line, nullptr, false);
    if (!state.is_object()) {
        reply.error = "repmgrd's answer is not a JSON object";
        return reply;
    }
    reply.state = std::move(state);
    if (request.is_null()) return reply;
    Read got = write_line(sock.fd, request, until) ? read_line(sock.fd, buf, line, until) : Read::Closed;
    nlohmann::json answer = got == Read::Line ? nlohmann::json::parse(line, nullptr, false) : nlohmann::json();
    if (answer.is_object())
        reply.answer = std::move(answer);
    else if (got == Read::Timeout)
        reply.error = "repmgrd did not answer the request within " + std::to_string(timeout.count()) + " ms";
    else
        reply.error = "repmgrd took no request (an older pgrm answers none)";
    return reply;
}

bool may_request(uid_t peer, uid_t daemon) { return peer == 0 || peer == daemon; }

void answer_daemon_client(int fd, const nlohmann::json& state, std::chrono::milliseconds timeout,
                          const DaemonRequestHandler& handle) {
    Fd client{::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC)};
    if (client.fd < 0) return;  // nobody waiting (EAGAIN), or gone already
    if (!write_line(client.fd, state, std::chrono::steady_clock::now() + timeout)) return;
    // Most clients read the state and hang up; a request comes as one more line.
    std::string buf, line;
    if (read_line(client.fd, buf, line, std::chrono::steady_clock::now() + timeout) != Read::Line) return;
    nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
    ucred peer{};
    socklen_t peer_len = sizeof peer;
    nlohmann::json answer;
    if (::getsockopt(client.fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0 || !may_request(peer.uid, ::geteuid()))
        answer = {{"error", "only root and the user repmgrd runs as (uid " + std::to_string(::geteuid()) +
                                ") may ask it to act"}};
    else if (!request.is_object())
        answer = {{"error", "the request is not a JSON object"}};
    else if (!handle)
        answer = {{"error", "this repmgrd takes no requests"}};
    else
        try {
            answer = handle(request);
        } catch (const std::exception& e) {  // the daemon's thread must not end on a request
            answer = {{"error", e.what()}};
        }
    write_line(client.fd, answer, std::chrono::steady_clock::now() + timeout);
}

}  // namespace pgrm
