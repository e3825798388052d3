#pragma once

// repmgrd's HTTP endpoint (http_listen): Patroni's health-check paths for load balancers
// (HAProxy's httpchk), answered from the daemon's state alone (StateBoard snapshots), so
// that a frozen server never freezes its health check. The routing is a pure function
// of the request and a snapshot (route(), unit tested); HttpServer owns the sockets and
// threads. Its server side is the only one of cpp-httplib (core/etcd is a client).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "plugins/daemon/state.hpp"
#include "plugins/daemon/verdicts.hpp"

namespace pgrm::daemon {

struct HttpAnswer {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::string allow;               // for 405: the methods a path takes
};

// The paths whose answer is a document the server computes, not the snapshot's verdict.
enum class Document { None, Cluster, Node, Metrics };

struct Route {
    HttpAnswer answer;               // the whole answer when document is None
    Document document = Document::None;
};

// "?lag=": bytes, or a number with kB, MB, GB or TB (1024-based, PostgreSQL's memory
// units, as Patroni reads it); nullopt when it is neither.
std::optional<std::uint64_t> parse_size(std::string_view text);

// The answer to method on target ("/replica?lag=16MB"), target as the request line has
// it: GET, HEAD and OPTIONS on a known path, 405 for other methods, 404 for other paths.
Route route(std::string_view method, std::string_view target, const Snapshot& s, const Now& now);

// Binds http_listen's address (before the daemon detaches, so an error reaches the
// terminal). Throws pgrm::Error(BadConfig) when it cannot.
int listen_http(const std::string& address);

// Serves the listening socket from threads of its own until destroyed: one thread
// takes connections and waits for their request heads without a thread each, a few
// workers answer complete requests. snapshot is called once per request; daemon_state
// is what the daemon answers on its socket (node status shows it, and so does /node).
class HttpServer {
public:
    HttpServer(int listen_fd, Config cfg, std::function<Snapshot()> snapshot,
               std::function<nlohmann::json()> daemon_state);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace pgrm::daemon
