#include <catch2/catch.hpp>

#include <unistd.h>

#include <thread>

#include "core/daemon_socket.hpp"
#include "core/error.hpp"

using namespace pgrm;

namespace {

// A node no other test or daemon uses: the socket's name comes from these.
Config node_config(const std::string& data_directory) {
    Config cfg;
    cfg.cluster = "unit";
    cfg.node = 7;
    cfg.conninfo = "host=127.0.0.1";
    cfg.data_directory = data_directory + "-" + std::to_string(::getpid());
    return cfg;
}

}  // namespace

TEST_CASE("the socket's name comes from the cluster, the node and its server", "[daemon_socket]") {
    Config a = node_config("/srv/a");
    CHECK(daemon_socket_name(a).rfind("pgrm-repmgrd/", 0) == 0);
    CHECK(daemon_socket_name(a) == daemon_socket_name(node_config("/srv/a")));
    CHECK(daemon_socket_name(a) != daemon_socket_name(node_config("/srv/b")));
    Config other_node = a;
    other_node.node = 8;
    CHECK(daemon_socket_name(a) != daemon_socket_name(other_node));
    // The same directory spelt differently is the same server.
    Config dotted = a;
    dotted.data_directory = "/srv/./" + a.data_directory.substr(5);
    CHECK(daemon_socket_name(a) == daemon_socket_name(dotted));
}

TEST_CASE("one daemon holds the socket; askers get its line, or learn there is none", "[daemon_socket]") {
    Config cfg = node_config("/srv/ask");
    DaemonReply none = ask_daemon(cfg, std::chrono::milliseconds(200));
    CHECK_FALSE(none.running);
    CHECK(none.error == "repmgrd is not running for this node");

    int fd = listen_daemon_socket(cfg);
    try {
        listen_daemon_socket(cfg);
        FAIL("a second daemon took the node's socket");
    } catch (const Error& e) {
        CHECK(std::string(e.what()) == "repmgrd is already running for node 7 of cluster \"unit\" on this host");
        CHECK(e.code() == ExitCode::BadConfig);
    }

    // Held but not answering: running, without a state, within the timeout.
    DaemonReply silent = ask_daemon(cfg, std::chrono::milliseconds(100));
    CHECK(silent.running);
    CHECK(silent.state.is_null());
    CHECK(silent.error == "repmgrd did not answer within 100 ms");
    answer_daemon_client(fd, {{"drain", true}}, std::chrono::milliseconds(100));  // the asker left

    std::thread answering([fd] {
        for (int i = 0; i < 200; ++i) {
            answer_daemon_client(fd, {{"pid", 42}, {"state", "standby"}}, std::chrono::milliseconds(500));
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    DaemonReply up = ask_daemon(cfg, std::chrono::seconds(5));
    answering.join();
    CHECK(up.running);
    CHECK(up.error.empty());
    CHECK(up.state["pid"] == 42);
    CHECK(up.state["state"] == "standby");

    ::close(fd);
    CHECK_FALSE(ask_daemon(cfg, std::chrono::milliseconds(200)).running);
}

TEST_CASE("requests are taken from root and from the daemon's own user only", "[daemon_socket]") {
    CHECK(may_request(0, 1000));
    CHECK(may_request(1000, 1000));
    CHECK_FALSE(may_request(1001, 1000));
    CHECK(may_request(0, 0));
    CHECK_FALSE(may_request(1000, 0));
}

TEST_CASE("a client may send a request after the state and read the answer", "[daemon_socket]") {
    Config cfg = node_config("/srv/request");
    int fd = listen_daemon_socket(cfg);
    std::vector<nlohmann::json> seen;
    auto serve = [&](DaemonRequestHandler handle) {
        return std::thread([fd, &seen, handle] {
            // Until one client has been answered (the listening socket does not block).
            for (int i = 0; i < 400; ++i) {
                size_t before = seen.size();
                answer_daemon_client(fd, {{"state", "paused"}}, std::chrono::milliseconds(500),
                                     [&](const nlohmann::json& r) {
                                         seen.push_back(r);
                                         return handle ? handle(r) : nlohmann::json{};
                                     });
                if (seen.size() > before) return;
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        });
    };

    std::thread answering = serve([](const nlohmann::json& r) { return nlohmann::json{{"accepted", r["generation"] == 3}}; });
    DaemonReply reply = ask_daemon(cfg, std::chrono::seconds(5), {{"request", "resume_failover"}, {"generation", 3}});
    answering.join();
    CHECK(reply.running);
    CHECK(reply.error.empty());
    CHECK(reply.state["state"] == "paused");
    CHECK(reply.answer["accepted"] == true);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0]["request"] == "resume_failover");

    // A handler that throws ends the request, not the daemon's thread.
    answering = serve([](const nlohmann::json&) -> nlohmann::json { throw std::runtime_error("no such thing"); });
    reply = ask_daemon(cfg, std::chrono::seconds(5), {{"request", "x"}});
    answering.join();
    CHECK(reply.answer["error"] == "no such thing");

    // A client that only reads the state leaves no request behind.
    seen.clear();
    std::thread quiet([fd] {
        for (int i = 0; i < 200; ++i) {
            answer_daemon_client(fd, {{"state", "standby"}}, std::chrono::milliseconds(500),
                                 [](const nlohmann::json&) -> nlohmann::json { FAIL("a request without one"); return {}; });
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    DaemonReply plain = ask_daemon(cfg, std::chrono::seconds(5));
    quiet.join();
    CHECK(plain.state["state"] == "standby");
    CHECK(plain.answer.is_null());

    ::close(fd);
}

TEST_CASE("a daemon that takes no requests is told apart from one that answers", "[daemon_socket]") {
    Config cfg = node_config("/srv/norequest");
    int fd = listen_daemon_socket(cfg);
    std::thread answering([fd] {
        for (int i = 0; i < 200; ++i) {
            answer_daemon_client(fd, {{"state", "standby"}}, std::chrono::milliseconds(500));
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    DaemonReply reply = ask_daemon(cfg, std::chrono::seconds(5), {{"request", "resume_failover"}, {"generation", 1}});
    answering.join();
    CHECK(reply.state["state"] == "standby");
    CHECK(reply.answer["error"] == "this repmgrd takes no requests");
    ::close(fd);
}
