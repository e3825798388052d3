#pragma once

// repmgrd's socket: one abstract Unix socket per node, named after the cluster, the node
// and its server (data directory, else conninfo). The daemon binds it for its whole life,
// which makes it the one daemon of that node on this host (two demo clusters of the same
// name in different directories are different nodes), and answers each connection with
// one JSON line, its state; node status and node check ask it. A client may then send a
// request, one JSON line, and read the answer line ("service unpause" asks the daemon to go
// on despite a pause no primary can lift). Named here, once, so the two sides agree.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/config.hpp"

namespace pgrm {

// "pgrm-repmgrd/<hash>": the socket's name in the abstract namespace (no file).
std::string daemon_socket_name(const Config& cfg);

// Binds the node's socket and listens on it; returns the descriptor (close-on-exec,
// non-blocking). Throws Error(BadConfig) saying that repmgrd is already running for the
// node when another process holds it.
int listen_daemon_socket(const Config& cfg);

// What a repmgrd of the node said when asked.
struct DaemonReply {
    bool running = false;             // a process holds the socket and answered
    nlohmann::json state;             // its JSON line (an object), when it sent one
    nlohmann::json answer;            // its answer to the request (an object), when it sent one
    std::string error;                // why there is no state, or no answer: no daemon, no answer in time, ...
};

// Connects to the node's socket and reads one JSON line, giving up after timeout. With a
// request (a JSON object), then sends it as one line and reads the answer line, within
// the same timeout. Never throws: a node without a daemon is an answer.
DaemonReply ask_daemon(const Config& cfg, std::chrono::milliseconds timeout, const nlohmann::json& request = nullptr);

// The socket is open to every local user: requests are taken from root and from the user
// the daemon runs as only.
bool may_request(uid_t peer, uid_t daemon);

// The daemon's side: writes state as one line to a client that connected to fd (a
// listening socket from listen_daemon_socket), if one is waiting. A client that then
// sends a request line rather than hanging up gets handle's answer as one line, or
// {"error": ...} when it may not ask or the line is no JSON object. Never blocks longer
// than timeout on each step with a client that does not read or write.
using DaemonRequestHandler = std::function<nlohmann::json(const nlohmann::json& request)>;
void answer_daemon_client(int fd, const nlohmann::json& state, std::chrono::milliseconds timeout,
                          const DaemonRequestHandler& handle = {});

}  // namespace pgrm
