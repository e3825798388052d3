#include "plugins/daemon/http.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/conninfo.hpp"
#include "core/daemon_socket.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/result.hpp"
#include "core/timeouts.hpp"
#include "pgrm_config.h"
#include "plugins/cluster/show.hpp"
#include "plugins/daemon/metrics.hpp"
#include "plugins/node/status.hpp"

namespace pgrm::daemon {

namespace {

// Connections whose request head is still coming: past this many, the oldest is closed,
// so idle connections cost a file descriptor each for http_head at most and never keep
// a fresh client out (the daemon's usual limit is 1024 descriptors).
constexpr std::size_t kMaxPending = 256;
// A request line and its headers; beyond this the client gets 431.
constexpr std::size_t kMaxHead = 8192;
// Complete requests waiting for a worker; beyond this the client gets 503 at once.
constexpr std::size_t kMaxQueued = 64;
// Workers answering complete requests. Health answers take microseconds; /cluster and
// /node hold one each at most (one computation at a time), so two always remain.
constexpr int kWorkers = 4;

constexpr std::string_view kAllowed = "GET, HEAD, OPTIONS";


std::string error_body(const std::string& message) { return nlohmann::json{{"error", message}}.dump() + "\n"; }

// "lag=16MB" out of "a=b&lag=16MB"; the first one wins.
std::optional<std::string_view> query_value(std::string_view query, std::string_view key) {
    while (!query.empty()) {
        std::size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        if (pair.starts_with(key) && pair.size() > key.size() && pair[key.size()] == '=')
            return pair.substr(key.size() + 1);
        if (pair == key) return std::string_view{};
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    }
    return std::nullopt;
}

// What every health answer says beside its status: enough to tell why.
std::string health_body(const Snapshot& s, const Now& now) {
    nlohmann::json j = {{"state", std::string(state_name(s.state))}, {"reason", redact_secrets(s.reason)}};
    j["role"] = !s.local ? nlohmann::json(nullptr) : nlohmann::json(s.local->in_recovery ? "standby" : "primary");
    j["read_only"] = s.local ? nlohmann::json(s.local->read_only) : nlohmann::json(nullptr);
    j["timeline"] = s.local ? nlohmann::json(s.local->timeline) : nlohmann::json(nullptr);
    auto lag = replay_lag_bytes(s);
    j["lag_bytes"] = lag ? nlohmann::json(*lag) : nlohmann::json(nullptr);
    j["paused"] = s.paused;
    bool passed = s.last_pass_steady.time_since_epoch().count() != 0;
    j["last_pass_age_s"] = passed ? nlohmann::json(std::chrono::duration<double>(now.steady - s.last_pass_steady).count())
                                  : nlohmann::json(nullptr);
    return j.dump() + "\n";
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    std::string_view unit(end, text.data() + text.size() - end);
    static constexpr std::pair<std::string_view, int> kUnits[] = {
        {"", 0}, {"B", 0}, {"kB", 10}, {"MB", 20}, {"GB", 30}, {"TB", 40}};
    for (const auto& [name, shift] : kUnits) {
        if (unit != name) continue;
        if (shift && n > (UINT64_MAX >> shift)) return std::nullopt;
        return n << shift;
    }
    return std::nullopt;
}

Route route(std::string_view method, std::string_view target, const Snapshot& s, const Now& now) {
    std::size_t mark = target.find('?');
    std::string_view path = target.substr(0, mark);
    std::string_view query = mark == std::string_view::npos ? std::string_view{} : target.substr(mark + 1);

    enum class Check { Primary, Replica, ReadOnly, Health, Liveness };
    struct Known {
        std::string_view path;
        std::optional<Check> check;
        Document document;
    };
    static constexpr Known kPaths[] = {
        {"/primary", Check::Primary, Document::None},   {"/master", Check::Primary, Document::None},
        {"/read-write", Check::Primary, Document::None}, {"/replica", Check::Replica, Document::None},
        {"/read-only", Check::ReadOnly, Document::None}, {"/health", Check::Health, Document::None},
        {"/liveness", Check::Liveness, Document::None},  {"/cluster", std::nullopt, Document::Cluster},
        {"/node", std::nullopt, Document::Node},         {"/metrics", std::nullopt, Document::Metrics},
    };
    const Known* known = nullptr;
    for (const Known& k : kPaths)
        if (k.path == path) known = &k;

    Route r;
    if (!known) {
        r.answer = {404, "application/json", error_body("unknown path: the paths are /primary (/master, /read-write), "
                                                        "/replica, /read-only, /health, /liveness, /cluster, /node and /metrics"), ""};
        return r;
    }
    if (method != "GET" && method != "HEAD" && method != "OPTIONS") {
        r.answer = {405, "application/json", error_body("method not allowed: " + std::string(kAllowed)),
                    std::string(kAllowed)};
        return r;
    }
    if (known->document != Document::None) {
        r.document = known->document;
        return r;
    }
    bool ok = false;
    switch (*known->check) {
    case Check::Primary: ok = writable_primary(s, now); break;
    case Check::Replica: {
        ok = streaming_standby(s, now);
        if (auto raw = query_value(query, "lag")) {
            auto most = parse_size(*raw);
            if (!most) {
                r.answer = {400, "application/json",
                            error_body("lag: invalid value \"" + std::string(*raw) +
                                       "\": must be bytes or a size such as 16MB (kB, MB, GB, TB)"),
                            ""};
                return r;
            }
            auto lag = replay_lag_bytes(s);
            ok = ok && lag && *lag <= *most;
        }
        break;
    }
    // A fenced primary runs, but its data may have diverged from the new primary's.
    case Check::ReadOnly: ok = loop_alive(s, now) && s.local && s.state != State::Fenced; break;
    case Check::Health: ok = loop_alive(s, now) && s.local.has_value(); break;
    case Check::Liveness: ok = loop_alive(s, now); break;
    }
    r.answer = {ok ? 200 : 503, "application/json", health_body(s, now), ""};
    return r;
}

// --------------------------------------------------------------------------------------
// The server
//
// httplib 0.11.4's own accept loop hands every connection to a pool thread that waits
// for it (keep_alive_timeout, read_timeout per byte): a few hundred idle or slowloris
// connections hold every thread and health checks queue behind them; and it buffers a
// header line without bound before judging its length. So the connections are taken
// here: one thread accepts and reads request heads from all of them with poll(),
// bounded in size (kMaxHead), time (http_head) and number (kMaxPending, the oldest
// closed first); only a complete head goes to a worker, which has httplib parse it,
// route it (our pre-routing handler answers every request) and write the answer, one
// request per connection.

namespace {

// One accepted connection, as httplib reads and writes it: the head already read, and
// nothing after it (no body is read: a worker never waits for a client); writing is
// bounded by http_io from the first write (after /cluster or /node computed their answer).
class Connection final : public httplib::Stream {
public:
    Connection(int fd, std::string head)
        : fd_(fd), head_(std::move(head)), deadline_(std::chrono::steady_clock::now() + timeouts::kHttpIo) {}

    bool is_readable() const override { return true; }  // read() never waits
    bool is_writable() const override { return wait(POLLOUT); }

    ssize_t read(char* ptr, size_t size) override {
        size = std::min(size, head_.size() - at_);
        std::memcpy(ptr, head_.data() + at_, size);
        at_ += size;
        return static_cast<ssize_t>(size);
    }

    ssize_t write(const char* ptr, size_t size) override {
        if (!writing_) deadline_ = std::chrono::steady_clock::now() + timeouts::kHttpIo;
        writing_ = true;
        size_t done = 0;
        while (done < size) {
            if (!wait(POLLOUT)) return -1;
            ssize_t n = ::send(fd_, ptr + done, size - done, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
            if (n > 0) done += static_cast<size_t>(n);
        }
        return static_cast<ssize_t>(size);
    }

    void get_remote_ip_and_port(std::string& ip, int& port) const override { address(::getpeername, ip, port); }
    void get_local_ip_and_port(std::string& ip, int& port) const override { address(::getsockname, ip, port); }
    socket_t socket() const override { return fd_; }

private:
    bool wait(short events) const {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd_, events, 0};
        int n = ::poll(&p, 1, static_cast<int>(left.count()));
        return n > 0 && (p.revents & (events | POLLHUP | POLLERR));
    }

    void address(int (*get)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        char host[NI_MAXHOST] = "", serv[NI_MAXSERV] = "";
        if (get(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
            ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, serv, sizeof serv,
                          NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
            ip = host;
            port = std::atoi(serv);
        }
    }

    int fd_;
    std::string head_;
    size_t at_ = 0;
    bool writing_ = false;
    std::chrono::steady_clock::time_point deadline_;
};

// httplib's parser and writer, with every request answered by one handler before
// httplib's own routing (so every method and path reaches it, and no body is read).
class Responder : public httplib::Server {
public:
    explicit Responder(std::function<void(const httplib::Request&, httplib::Response&)> handle) {
        set_pre_routing_handler([handle = std::move(handle)](const httplib::Request& req, httplib::Response& res) {
            handle(req, res);
            return HandlerResponse::Handled;
        });
    }
    void answer(httplib::Stream& strm) {
        bool closed = false;
        process_request(strm, true, closed, nullptr);
    }
};

// The signals are the main loop's: their flags are read there.
void block_signals() {
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
    ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
}

// A short answer written by the accepting thread itself, never waiting.
void answer_now(int fd, int status, std::string_view reason) {
    std::string body = error_body(std::string(reason));
    std::string text = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                       "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n" + body;
    (void)!::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Closes after the answer, reading what the client still sends for a moment, so that
// closing with unread data (a reset) does not destroy the answer before it is read.
void finish(int fd) {
    ::shutdown(fd, SHUT_WR);
    char sink[4096];
    while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
    ::close(fd);
}

// A command's result as its --json prints it; 503 when it failed. The warnings it
// logged went to the daemon's log.
HttpAnswer command_document(const std::string& command, const std::function<Result()>& run) {
    std::ostringstream out;
    int status = 503;
    try {
        Result r = run();
        render_json(command, r, {}, out);
        if (r.exit_code == ExitCode::Success) status = 200;
    } catch (const Error& e) {
        render_error_json(command, e, {}, out);
    } catch (const std::exception& e) {
        render_error_json(command, Error(ExitCode::DbQuery, e.what()), {}, out);
    }
    return {status, "application/json", out.str(), ""};
}

// A document that takes queries (/cluster, /node): computed by one request at a time and
// given again for http_reuse, so a flood costs one computation per http_reuse. Requests
// that come while it is computed get the last one (with its age), or 503 before there
// is any: they never wait, so slow nodes hold one worker at most.
class Reused {
public:
    explicit Reused(std::function<HttpAnswer()> compute) : compute_(std::move(compute)) {}

    // The answer, and its age in seconds.
    HttpAnswer get(int& age_s) {
        {
            std::lock_guard lock(mutex_);
            if (fresh()) return copy(age_s);
        }
        std::unique_lock busy(computing_, std::try_to_lock);
        if (!busy) {
            std::lock_guard lock(mutex_);
            if (at_.time_since_epoch().count() != 0) return copy(age_s);
            return {503, "application/json", error_body("being computed for another request: retry"), ""};
        }
        {
            std::lock_guard lock(mutex_);  // the request before this one may have just done it
            if (fresh()) return copy(age_s);
        }
        HttpAnswer answer = compute_();
        std::lock_guard lock(mutex_);
        last_ = answer;
        at_ = std::chrono::steady_clock::now();
        age_s = 0;
        return answer;
    }

private:
    bool fresh() const {
        return at_.time_since_epoch().count() != 0 && std::chrono::steady_clock::now() - at_ < timeouts::kHttpReuse;
    }
    HttpAnswer copy(int& age_s) const {
        age_s = static_cast<int>(
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - at_).count());
        return last_;
    }

    std::function<HttpAnswer()> compute_;
    std::mutex computing_;           // held by the request computing
    std::mutex mutex_;               // last_ and at_
    HttpAnswer last_;
    std::chrono::steady_clock::time_point at_{};
};

// Only CRLF CRLF: httplib skips header lines that end in a bare LF, so a head that
// ended in "\n\n" would have it wait for more.
bool head_complete(const std::string& head) { return head.find("\r\n\r\n") != std::string::npos; }

}  // namespace

struct HttpServer::Impl {
    struct Pending {
        int fd;
        std::chrono::steady_clock::time_point deadline;
        std::string head;
        bool closing = false;        // answered (431, 408): draining until the client is done
    };
    struct Ready {
        int fd = -1;
        std::string head;
    };

    int listen_fd;
    int wake;
    Config cfg;
    std::function<Snapshot()> snapshot;
    std::function<nlohmann::json()> daemon_state;
    Reused cluster;
    Reused node;
    Responder responder;
    std::atomic<bool> stopping{false};

    std::mutex mutex;                // queue
    std::condition_variable ready;
    std::deque<Ready> queue;

    std::thread gate;
    std::vector<std::thread> workers;

    Impl(int fd, Config config, std::function<Snapshot()> snap, std::function<nlohmann::json()> state)
        : listen_fd(fd), wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), cfg(std::move(config)),
          snapshot(std::move(snap)), daemon_state(std::move(state)),
          cluster([this] {
              return command_document("cluster show", [this] { return cluster::show_cluster(cfg, timeouts::kHttpProbe); });
          }),
          node([this] {
              return command_document("node status", [this] {
                  return node::node_status(cfg, timeouts::kHttpProbe, [this] {
                      DaemonReply reply;
                      reply.running = true;
                      reply.state = daemon_state();
                      return reply;
                  });
              });
          }),
          responder([this](const httplib::Request& req, httplib::Response& res) { handle(req, res); }) {
        if (wake < 0) {
            std::string why = std::strerror(errno);
            ::close(listen_fd);
            throw Error(ExitCode::BadConfig, "could not create an eventfd: " + why);
        }
        try {
            gate = std::thread([this] { accept_loop(); });
            for (int i = 0; i < kWorkers; ++i) workers.emplace_back([this] { work(); });
        } catch (...) {
            stop();  // the threads already started, which would terminate the process unjoined
            throw;
        }
    }

    ~Impl() { stop(); }

    void stop() {
        {
            // Under the lock: a worker between its check and its wait would miss the wakeup.
            std::lock_guard lock(mutex);
            stopping = true;
        }
        std::uint64_t one = 1;
        if (::write(wake, &one, sizeof one) < 0) log::warning("could not stop the HTTP threads");
        ready.notify_all();
        if (gate.joinable()) gate.join();
        for (auto& w : workers) w.join();
        for (auto& r : queue) ::close(r.fd);
        ::close(wake);
        ::close(listen_fd);
    }

    void handle(const httplib::Request& req, httplib::Response& res) {
        try {
            Snapshot snap = snapshot();
            Now now = Now::current();
            Route r = route(req.method, req.target, snap, now);
            if (r.document == Document::Metrics)
                r.answer = {200, "text/plain; version=0.0.4; charset=utf-8",
                            render_metrics(snap, cfg.cluster, cfg.node, PGRM_VERSION, now), ""};
            int age = -1;
            if (r.document == Document::Cluster) r.answer = cluster.get(age);
            if (r.document == Document::Node) r.answer = node.get(age);
            if (age > 0) res.set_header("Age", std::to_string(age));
            res.status = r.answer.status;
            if (!r.answer.allow.empty()) res.set_header("Allow", r.answer.allow);
            res.set_header("Cache-Control", "no-store");
            res.set_content(r.answer.body, r.answer.content_type);
        } catch (const std::exception& e) {
            res.status = 500;
            res.set_content(error_body(e.what()), "application/json");
        }
    }

    void work() {
        block_signals();
        for (;;) {
            Ready r;
            {
                std::unique_lock lock(mutex);
                ready.wait(lock, [this] { return stopping || !queue.empty(); });
                if (stopping) return;
                r = std::move(queue.front());
                queue.pop_front();
            }
            Connection conn(r.fd, std::move(r.head));
            try {
                responder.answer(conn);
            } catch (const std::exception&) {
                // httplib's own failure: the connection is closed, the worker goes on
            }
            finish(r.fd);
        }
    }

    void hand_over(Pending& p) {
        {
            std::lock_guard lock(mutex);
            if (queue.size() < kMaxQueued) {
                queue.push_back({p.fd, std::move(p.head)});
                ready.notify_one();
                p.fd = -1;
                return;
            }
        }
        answer_now(p.fd, 503, "Service Unavailable");
        finish(p.fd);
        p.fd = -1;
    }

    // Reads what the client sent so far; false when the connection is done with.
    bool take(Pending& p) {
        char buf[4096];
        // Bounded, so that a client sending without end cannot keep this thread here.
        for (int reads = 0; reads < 16; ++reads) {
            ssize_t n = ::recv(p.fd, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return true;
            if (p.closing) continue;  // drained
            p.head.append(buf, static_cast<size_t>(n));
            if (head_complete(p.head)) {
                hand_over(p);
                return false;
            }
            if (p.head.size() > kMaxHead) {
                answer_now(p.fd, 431, "Request Header Fields Too Large");
                ::shutdown(p.fd, SHUT_WR);
                p.closing = true;
                p.head.clear();
                p.head.shrink_to_fit();
                p.deadline = std::chrono::steady_clock::now() + timeouts::kHttpIo;
            }
        }
        return true;
    }

    void accept_loop() {
        block_signals();
        std::deque<Pending> pending;  // oldest first
        std::chrono::steady_clock::time_point accept_after{};
        std::vector<pollfd> fds;
        while (!stopping) {
            auto now = std::chrono::steady_clock::now();
            // Past their deadline: a head still incomplete (408), or a drain done.
            for (auto& p : pending) {
                if (p.fd < 0 || now < p.deadline) continue;
                if (!p.closing) answer_now(p.fd, 408, "Request Timeout");
                ::close(p.fd);
                p.fd = -1;
            }
            std::erase_if(pending, [](const Pending& p) { return p.fd < 0; });

            bool accepting = now >= accept_after;
            fds.clear();
            fds.push_back({wake, POLLIN, 0});
            fds.push_back({accepting ? listen_fd : -1, POLLIN, 0});
            auto next = now + std::chrono::seconds(1);
            for (const auto& p : pending) {
                fds.push_back({p.fd, POLLIN, 0});
                next = std::min(next, p.deadline);
            }
            if (!accepting) next = std::min(next, accept_after);
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1;
            if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(wait, 1))) < 0) {
                if (errno == EINTR) continue;
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            if (fds[0].revents) break;
            for (size_t i = 2; i < fds.size(); ++i) {
                Pending& p = pending[i - 2];
                if (fds[i].revents && !take(p) && p.fd >= 0) {
                    ::close(p.fd);
                    p.fd = -1;
                }
            }
            if (fds[1].revents & POLLIN) accept_new(pending, accept_after);
        }
        for (auto& p : pending)
            if (p.fd >= 0) ::close(p.fd);
    }

    void accept_new(std::deque<Pending>& pending, std::chrono::steady_clock::time_point& accept_after) {
        for (int i = 0; i < 64; ++i) {
            int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    // Out of descriptors: the oldest waiting client makes room, else
                    // accepting pauses a moment instead of spinning.
                    auto oldest = std::find_if(pending.begin(), pending.end(), [](const Pending& p) { return p.fd >= 0; });
                    if (oldest != pending.end()) {
                        ::close(oldest->fd);
                        oldest->fd = -1;
                        continue;
                    }
                    accept_after = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
                }
                return;  // EAGAIN, a connection reset before it was taken, ...
            }
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            std::size_t live = std::count_if(pending.begin(), pending.end(), [](const Pending& p) { return p.fd >= 0; });
            if (live >= kMaxPending) {
                auto oldest = std::find_if(pending.begin(), pending.end(), [](const Pending& p) { return p.fd >= 0; });
                ::close(oldest->fd);
                oldest->fd = -1;
            }
            pending.push_back({fd, std::chrono::steady_clock::now() + timeouts::kHttpHead, {}, false});
        }
    }
};

int listen_http(const std::string& address) {
    ListenAddress at;
    try {
        at = parse_listen_address(address);
    } catch (const std::invalid_argument& e) {
        throw Error(ExitCode::BadConfig, std::string("http_listen: ") + e.what());
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string port = std::to_string(at.port);
    if (int rc = ::getaddrinfo(at.host.c_str(), port.c_str(), &hints, &found); rc != 0)
        throw Error(ExitCode::BadConfig, "could not listen on \"" + address + "\": " + ::gai_strerror(rc));
    std::string why = "no address";
    int fd = -1;
    for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            why = std::strerror(errno);
            continue;
        }
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
            why = std::strerror(errno);
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    if (fd < 0) throw Error(ExitCode::BadConfig, "could not listen on \"" + address + "\": " + why);
    return fd;
}

HttpServer::HttpServer(int listen_fd, Config cfg, std::function<Snapshot()> snapshot,
                       std::function<nlohmann::json()> daemon_state)
    : impl_(std::make_unique<Impl>(listen_fd, std::move(cfg), std::move(snapshot), std::move(daemon_state))) {}

HttpServer::~HttpServer() = default;

}  // namespace pgrm::daemon
