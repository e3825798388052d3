#pragma once

// repmgrd's socket: one abstract Unix socket per node, named after the cluster, the node
// and its server (data directory, else conninfo). The daemon binds it for its whole life,
// which makes it the one daemon of that node on this host (two demo clusters of the same
// name in different directories are different nodes), and answers each connection with
// one JSON line, its state; node status and node check ask it. Named here, once, so the
// two sides agree.

#include <chrono>
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
    std::string error;                // why there is no state: no daemon, no answer in time, ...
};

// Connects to the node's socket and reads one JSON line, giving up after timeout.
// Never throws: a node without a daemon is an answer.
DaemonReply ask_daemon(const Config& cfg, std::chrono::milliseconds timeout);

// The daemon's side: writes state as one line to a client that connected to fd (a
// listening socket from listen_daemon_socket), if one is waiting; never blocks longer
// than timeout on a client that does not read.
void answer_daemon_client(int fd, const nlohmann::json& state, std::chrono::milliseconds timeout);

}  // namespace pgrm
