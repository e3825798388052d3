#include <catch2/catch.hpp>

#include "plugins/service/status.hpp"

using pgrm::FailoverPause;
using pgrm::Node;
using pgrm::service::DaemonFacts;
using pgrm::service::DaemonView;
using pgrm::service::derive_daemon_view;

namespace {

Node node(int id, const std::string& type) {
    Node n;
    n.id = id;
    n.name = "node" + std::to_string(id);
    n.type = type;
    return n;
}

constexpr std::chrono::seconds kAlive{24};

FailoverPause paused(bool yes) {
    FailoverPause p;
    p.paused = yes;
    return p;
}

}  // namespace

TEST_CASE("this node's repmgrd is as its socket answers: pid, state, paused as it counts it", "[service]") {
    DaemonFacts f;
    f.local = true;
    f.answered = true;
    f.state = {{"pid", 4242}, {"state", "paused"}, {"paused", true}, {"pause_overridden", false}};
    f.record_age = 90.0;         // its primary is gone: no monitoring row for a while
    f.pause = paused(true);
    DaemonView v = derive_daemon_view(node(2, "standby"), f, kAlive);
    CHECK(v.running == true);
    CHECK(v.running_text == "running");
    CHECK(v.pid == 4242);
    CHECK(v.state == "paused");
    CHECK(v.paused_text == "yes");
    CHECK(v.upstream_last_seen_text == "90 second(s) ago");
    CHECK(v.note.empty());

    // Told to go on despite the pause the metadata still holds: its word counts.
    f.state["paused"] = false;
    f.state["pause_overridden"] = true;
    v = derive_daemon_view(node(2, "standby"), f, kAlive);
    CHECK(v.paused == false);
    CHECK(v.pause_overridden);
    CHECK(v.paused_text == "no (overridden)");
}

TEST_CASE("this node's repmgrd not answering is not running; the pause then as the metadata says", "[service]") {
    DaemonFacts f;
    f.local = true;
    f.record_age = 1.0;  // a fresh record does not make a silent socket a running daemon
    f.pause = paused(false);
    DaemonView v = derive_daemon_view(node(1, "primary"), f, kAlive);
    CHECK(v.running == false);
    CHECK(v.running_text == "not running");
    CHECK_FALSE(v.pid);
    CHECK(v.paused_text == "no");
    CHECK(v.upstream_last_seen_text == "n/a");  // a primary has no upstream

    // Whatever the socket's other end sent that is not a state line of the right types.
    f.answered = true;
    f.state = {{"pid", "x"}, {"paused", "yes"}};
    v = derive_daemon_view(node(1, "primary"), f, kAlive);
    CHECK(v.running == true);
    CHECK_FALSE(v.pid);
    CHECK(v.paused_text == "no");  // the metadata's
}

TEST_CASE("another node's repmgrd runs while its records are fresh, else is unknown, never not running",
          "[service]") {
    DaemonFacts f;
    f.record_age = 3.4;
    f.pause = paused(true);
    DaemonView v = derive_daemon_view(node(3, "standby"), f, kAlive);
    CHECK(v.running == true);
    CHECK_FALSE(v.pid);  // known on its own host only
    CHECK(v.paused_text == "yes");
    CHECK(v.upstream_last_seen == Approx(3.4));
    CHECK(v.upstream_last_seen_text == "3 second(s) ago");

    f.record_age = 75.0;
    v = derive_daemon_view(node(3, "standby"), f, kAlive);
    CHECK_FALSE(v.running.has_value());
    CHECK(v.running_text == "unknown");
    CHECK(v.note == "node 3 (\"node3\"): its repmgrd last recorded a monitoring row 75 s ago (running: under 24 s); "
                    "only a repmgrd on this host can be asked");

    f.record_age.reset();
    f.pause.reset();  // its server did not answer
    v = derive_daemon_view(node(1, "primary"), f, kAlive);
    CHECK(v.running_text == "unknown");
    CHECK(v.note == "node 1 (\"node1\"): its repmgrd has recorded nothing (running: under 24 s); only a repmgrd on "
                    "this host can be asked");
    CHECK(v.paused_text == "n/a");
    CHECK(v.upstream_last_seen_text == "n/a");
}
