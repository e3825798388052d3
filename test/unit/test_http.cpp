#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "plugins/daemon/http.hpp"
#include "plugins/daemon/metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

using namespace pgrm;
using namespace pgrm::daemon;
using namespace std::chrono_literals;

namespace {

const Now kNow{std::chrono::system_clock::time_point(std::chrono::hours(500000)),
               std::chrono::steady_clock::time_point(std::chrono::hours(1000))};

// A daemon whose last pass, just now, found its server a writable primary seeing all
// three nodes, with failover = automatic.
Snapshot primary() {
    Snapshot s;
    s.state = State::Primary;
    s.started = kNow.wall - 1h;
    s.started_steady = kNow.steady - 1h;
    s.last_pass = kNow.wall - 1s;
    s.last_pass_steady = kNow.steady - 1s;
    s.last_check = s.last_pass;
    s.liveness = 10s;
    s.majority_seen = kNow.steady - 2s;
    s.majority_trust = 5s;
    s.automatic = true;
    NodeSample local;
    local.in_recovery = false;
    local.timeline = 2;
    local.current_lsn = "0/3000000";
    s.local = local;
    s.nodes_active = 3;
    s.nodes_visible = 3;
    return s;
}

// A standby streaming from its primary, 1 MB of WAL behind it in replay.
Snapshot standby() {
    Snapshot s = primary();
    s.state = State::Standby;
    s.local->in_recovery = true;
    s.local->current_lsn.reset();
    s.local->receive_lsn = "0/3000000";
    s.local->replay_lsn = "0/2F00000";
    s.local->receiver_status = "streaming";
    s.primary_lsn = 0x3000000;
    s.nodes_active = s.nodes_visible = 0;
    return s;
}

int status(std::string_view target, const Snapshot& s, std::string_view method = "GET") {
    return route(method, target, s, kNow).answer.status;
}

}  // namespace

TEST_CASE("lag sizes are bytes or PostgreSQL's memory units", "[http]") {
    CHECK(parse_size("0") == 0u);
    CHECK(parse_size("1048576") == 1048576u);
    CHECK(parse_size("512kB") == 512u * 1024);
    CHECK(parse_size("16MB") == 16u * 1024 * 1024);
    CHECK(parse_size("1GB") == 1024u * 1024 * 1024);
    CHECK(parse_size("2TB") == 2ull << 40);
    CHECK(parse_size("100B") == 100u);
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("MB"));
    CHECK_FALSE(parse_size("16mb"));      // PostgreSQL's spelling only, as Patroni reads it
    CHECK_FALSE(parse_size("16 MB"));
    CHECK_FALSE(parse_size("-1"));
    CHECK_FALSE(parse_size("1.5MB"));
    CHECK_FALSE(parse_size("99999999999999999999"));
    CHECK_FALSE(parse_size("9999999999999TB"));  // overflows
}

TEST_CASE("/primary is 200 only for a writable, unfenced primary as the daemon knows it now", "[http]") {
    Snapshot s = primary();
    for (auto path : {"/primary", "/master", "/read-write"}) CHECK(status(path, s) == 200);

    SECTION("other states") {
        for (State st : {State::Starting, State::Fenced, State::Demoting, State::LocalServerDown, State::Unregistered,
                         State::Standby, State::Promoting, State::Stopped}) {
            s.state = st;
            INFO(state_name(st));
            CHECK(status("/primary", s) == 503);
        }
    }
    SECTION("read-only: fenced by an earlier run or by hand") {
        s.local->read_only = true;
        CHECK(status("/primary", s) == 503);
    }
    SECTION("in recovery") {
        s.local->in_recovery = true;
        CHECK(status("/primary", s) == 503);
    }
    SECTION("its server did not answer the last pass") {
        s.local.reset();
        CHECK(status("/primary", s) == 503);
    }
    SECTION("a writable node on a newer timeline: fenced next") {
        s.newer_primary = true;
        CHECK(status("/primary", s) == 503);
    }
    SECTION("cut off from a majority with failover = automatic: about to fence") {
        s.nodes_visible = 1;
        CHECK(status("/primary", s) == 503);
        s.automatic = false;  // manual: never fences
        CHECK(status("/primary", s) == 200);
    }
    SECTION("two of three is a majority") {
        s.nodes_visible = 2;
        CHECK(status("/primary", s) == 200);
    }
    SECTION("a majority seen too long ago: a slow loop can no longer tell it is not about to fence") {
        // Well within liveness, but past majority_trust (fence_after less a health check).
        s.majority_seen = kNow.steady - 5s;
        CHECK(status("/liveness", s) == 200);
        CHECK(status("/primary", s) == 503);
        s.majority_seen = kNow.steady - 4s;
        CHECK(status("/primary", s) == 200);
        s.majority_seen = {};  // never
        CHECK(status("/primary", s) == 503);
        s.automatic = false;  // manual: never fences
        CHECK(status("/primary", s) == 200);
    }
    SECTION("dcs = etcd: from the leader key's lease, not the majority") {
        s.leader_key = true;
        s.key_trust = 5s;  // etcd_fence_after less a health check
        s.key_renewed = kNow.steady - 2s;
        CHECK(status("/primary", s) == 200);
        // Reaching etcd and none of the others: it keeps the key, and the writes.
        s.nodes_visible = 1;
        s.majority_seen = {};
        CHECK(status("/primary", s) == 200);
        // etcd has not answered a renewal for key_trust: about to fence.
        s.key_renewed = kNow.steady - 5s;
        CHECK(status("/primary", s) == 503);
        s.key_renewed = kNow.steady - 4s;
        CHECK(status("/primary", s) == 200);
        // The key is not this node's (never renewed, or another node holds it).
        s.key_renewed = {};
        CHECK(status("/primary", s) == 503);
        // Fenced, or read-only, is 503 whatever the key says.
        s.key_renewed = kNow.steady - 1s;
        s.local->read_only = true;
        CHECK(status("/primary", s) == 503);
        s.local->read_only = false;
        s.state = State::Fenced;
        CHECK(status("/primary", s) == 503);
        // failover = manual: nobody fences nor promotes, as without etcd.
        s.state = State::Primary;
        s.key_renewed = {};
        s.automatic = false;
        CHECK(status("/primary", s) == 200);
    }
    SECTION("dcs = etcd: a majority is not enough without the key") {
        s.leader_key = true;
        s.key_trust = 5s;
        CHECK(status("/primary", s) == 503);  // all three nodes seen, no renewal
    }
    SECTION("ages are steady-clock ages: a step of the wall clock changes no verdict") {
        s.last_pass = kNow.wall + 1h;  // the wall clock stepped back an hour since
        s.started = kNow.wall + 2h;
        CHECK(status("/primary", s) == 200);
        Now later{kNow.wall - 1h, kNow.steady + 6s};  // stepped back, yet 6 s passed
        CHECK(route("GET", "/primary", s, later).answer.status == 503);
        CHECK(route("GET", "/liveness", s, later).answer.status == 200);
    }
    SECTION("nodes not counted (a pass that probed no node) with failover = automatic: unknown") {
        s.nodes_active = s.nodes_visible = 0;
        CHECK(status("/primary", s) == 503);
        s.automatic = false;
        CHECK(status("/primary", s) == 200);
    }
    SECTION("a stuck loop knows nothing of now") {
        s.last_pass_steady = kNow.steady - 11s;
        CHECK(status("/primary", s) == 503);
        CHECK(status("/liveness", s) == 503);
        CHECK(status("/health", s) == 503);
        CHECK(status("/read-only", s) == 503);
    }
    SECTION("a long command (standby promote, follow) runs: busy until its own bound, not stuck") {
        s.state = State::Promoting;
        s.last_pass_steady = kNow.steady - 1min;
        s.busy_until = kNow.steady + 4min;
        CHECK(status("/liveness", s) == 200);
        CHECK(status("/primary", s) == 503);
        s.busy_until = kNow.steady - 1s;  // past it: stuck after all
        CHECK(status("/liveness", s) == 503);
    }
}

TEST_CASE("/replica: a streaming standby, within ?lag= of its primary in replay", "[http]") {
    Snapshot s = standby();
    CHECK(status("/replica", s) == 200);
    CHECK(status("/replica?lag=1MB", s) == 200);
    CHECK(status("/replica?lag=1048576", s) == 200);
    CHECK(status("/replica?lag=1048575", s) == 503);
    CHECK(status("/replica?lag=512kB", s) == 503);
    CHECK(status("/replica?x=1&lag=16MB", s) == 200);
    CHECK(replay_lag_bytes(s) == 1048576u);

    SECTION("its primary is fenced (read-only): a former primary, perhaps on an old timeline") {
        s.primary_read_only = true;
        CHECK(status("/replica", s) == 503);
        CHECK(status("/replica?lag=16MB", s) == 503);
        CHECK(status("/read-only", s) == 200);  // its data can still be read, as any standby's
    }
    SECTION("a bad lag is the client's error, whatever the state") {
        for (auto target : {"/replica?lag=", "/replica?lag=16mb", "/replica?lag=abc", "/replica?lag"}) {
            INFO(target);
            CHECK(status(target, s) == 400);
            CHECK(nlohmann::json::parse(route("GET", target, s, kNow).answer.body).contains("error"));
        }
        s.state = State::Primary;
        CHECK(status("/replica?lag=x", s) == 400);
    }
    SECTION("not streaming") {
        s.local->receiver_status = "waiting";
        CHECK(status("/replica", s) == 503);
        s.local->receiver_status.reset();
        CHECK(status("/replica", s) == 503);
    }
    SECTION("its primary is being lost, or it fails over") {
        for (State st : {State::PrimaryLostConfirming, State::PrimaryLost, State::Paused, State::Electing,
                         State::Promoting, State::FollowingNewPrimary, State::SwitchoverWait, State::NeedsRejoin}) {
            s.state = st;
            INFO(state_name(st));
            CHECK(status("/replica", s) == 503);
        }
    }
    SECTION("without the primary's position a lag limit cannot be met") {
        s.primary_lsn.reset();
        CHECK(status("/replica", s) == 200);
        CHECK(status("/replica?lag=1GB", s) == 503);
    }
    SECTION("replayed past the sampled primary position: no lag") {
        s.local->replay_lsn = "0/3000010";
        CHECK(replay_lag_bytes(s) == 0u);
        CHECK(status("/replica?lag=0", s) == 200);
    }
    SECTION("a primary is no replica") {
        CHECK(status("/replica", primary()) == 503);
        CHECK(status("/primary", s) == 503);
    }
}

TEST_CASE("/read-only, /health and /liveness", "[http]") {
    Snapshot p = primary(), s = standby();
    CHECK(status("/read-only", p) == 200);
    CHECK(status("/read-only", s) == 200);
    CHECK(status("/health", p) == 200);
    CHECK(status("/liveness", p) == 200);

    Snapshot fenced = primary();
    fenced.state = State::Fenced;
    fenced.local->read_only = true;
    CHECK(status("/read-only", fenced) == 503);  // its data may have diverged
    CHECK(status("/health", fenced) == 200);     // but it runs

    Snapshot down = primary();
    down.state = State::LocalServerDown;
    down.local.reset();
    CHECK(status("/read-only", down) == 503);
    CHECK(status("/health", down) == 503);
    CHECK(status("/liveness", down) == 200);  // the loop itself goes on

    Snapshot starting;
    starting.started_steady = kNow.steady - 2s;
    starting.liveness = 10s;
    CHECK(status("/liveness", starting) == 200);
    starting.started_steady = kNow.steady - 11s;
    CHECK(status("/liveness", starting) == 503);  // its first pass never ended
}

TEST_CASE("methods and paths", "[http]") {
    Snapshot s = primary();
    CHECK(status("/primary", s, "HEAD") == 200);
    CHECK(status("/primary", s, "OPTIONS") == 200);  // HAProxy's httpchk default
    for (auto m : {"POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"}) {
        INFO(m);
        Route r = route(m, "/primary", s, kNow);
        CHECK(r.answer.status == 405);
        CHECK(r.answer.allow == "GET, HEAD, OPTIONS");
    }
    for (auto target : {"/", "/primary/", "/Primary", "/nope", "/primaryx", "", "*", "/health/../primary"}) {
        INFO(target);
        CHECK(status(target, s) == 404);
        CHECK(status(target, s, "POST") == 404);
    }
    CHECK(status("/primary?anything", s) == 200);
    auto body = nlohmann::json::parse(route("GET", "/primary", s, kNow).answer.body);
    CHECK(body["state"] == "primary");
    CHECK(body["role"] == "primary");
    CHECK(body["timeline"] == 2);
    CHECK(route("GET", "/primary", s, kNow).document == Document::None);
}

TEST_CASE("the health answer never shows a password", "[http]") {
    Snapshot s = primary();
    s.state = State::LocalServerDown;
    s.reason = "local server: could not connect to \"host=x password=sekrit\"";
    CHECK(route("GET", "/health", s, kNow).answer.body.find("sekrit") == std::string::npos);
}

TEST_CASE("/cluster and /node are documents the server computes", "[http]") {
    Snapshot s = standby();
    CHECK(route("GET", "/cluster", s, kNow).document == Document::Cluster);
    CHECK(route("HEAD", "/node", s, kNow).document == Document::Node);
    CHECK(route("GET", "/cluster?x=1", s, kNow).document == Document::Cluster);
    Route post = route("POST", "/cluster", s, kNow);
    CHECK(post.document == Document::None);
    CHECK(post.answer.status == 405);
    CHECK(route("GET", "/clusters", s, kNow).answer.status == 404);
}

namespace {

// name{labels} -> value, and every family's TYPE; checks that each sample comes after
// its family's HELP and TYPE.
struct Scrape {
    std::map<std::string, std::string> samples;
    std::map<std::string, std::string> types;
};

Scrape parse(const std::string& text) {
    Scrape out;
    std::istringstream in(text);
    std::string line, helped;
    while (std::getline(in, line)) {
        REQUIRE_FALSE(line.empty());
        if (line.starts_with("# HELP ")) {
            helped = line.substr(7, line.find(' ', 7) - 7);
            continue;
        }
        if (line.starts_with("# TYPE ")) {
            std::string name = line.substr(7, line.find(' ', 7) - 7);
            CHECK(name == helped);
            CHECK_FALSE(out.types.contains(name));  // one family, once
            out.types[name] = line.substr(line.rfind(' ') + 1);
            continue;
        }
        std::string name = line.substr(0, line.find('{'));
        INFO(line);
        CHECK(name == helped);
        out.samples[line.substr(0, line.rfind(' '))] = line.substr(line.rfind(' ') + 1);
    }
    return out;
}

const std::string kLabels = "cluster=\"test\",node_id=\"2\"";

std::string at(const Scrape& s, const std::string& name, const std::string& extra = "") {
    auto it = s.samples.find(name + "{" + kLabels + (extra.empty() ? "" : "," + extra) + "}");
    return it == s.samples.end() ? "absent" : it->second;
}

}  // namespace

TEST_CASE("/metrics: a standby's state, positions and lag in Prometheus text", "[http]") {
    Snapshot s = standby();
    s.local->replay_age_s = 4.5;
    s.failovers = 2;
    s.fences = 1;
    s.passes = 7;
    s.paused = true;
    Scrape m = parse(render_metrics(s, "test", 2, "0.1.0", kNow));
    CHECK(at(m, "pgrm_up") == "1");
    CHECK(at(m, "pgrm_build_info", "version=\"0.1.0\"") == "1");
    CHECK(at(m, "pgrm_state", "state=\"standby\"") == "1");
    CHECK(at(m, "pgrm_state", "state=\"primary\"") == "0");
    CHECK(at(m, "pgrm_state", "state=\"fenced\"") == "0");
    CHECK(at(m, "pgrm_primary") == "0");
    CHECK(at(m, "pgrm_writable_primary") == "0");
    CHECK(at(m, "pgrm_timeline") == "2");
    CHECK(at(m, "pgrm_wal_current_bytes") == "absent");  // a standby has none
    CHECK(at(m, "pgrm_wal_receive_bytes") == std::to_string(0x3000000));
    CHECK(at(m, "pgrm_wal_replay_bytes") == std::to_string(0x2F00000));
    CHECK(at(m, "pgrm_replication_lag_bytes") == "0");
    CHECK(at(m, "pgrm_apply_lag_bytes") == "1048576");
    CHECK(at(m, "pgrm_lag_bytes") == "1048576");
    CHECK(at(m, "pgrm_apply_lag_seconds") == "4.5");
    CHECK(at(m, "pgrm_streaming") == "1");
    CHECK(at(m, "pgrm_paused") == "1");
    CHECK(at(m, "pgrm_failovers_total") == "2");
    CHECK(at(m, "pgrm_fences_total") == "1");
    CHECK(m.types["pgrm_failovers_total"] == "counter");
    CHECK(m.types["pgrm_fences_total"] == "counter");
    CHECK(at(m, "pgrm_passes_total") == "7");
    CHECK(m.types["pgrm_passes_total"] == "counter");
    CHECK(m.types["pgrm_lag_bytes"] == "gauge");
    CHECK(at(m, "pgrm_last_pass_timestamp_seconds") ==
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(s.last_pass.time_since_epoch()).count()));
    CHECK(at(m, "pgrm_loop_alive") == "1");
}

TEST_CASE("/metrics: a primary, a down server, and label values quoted", "[http]") {
    Scrape p = parse(render_metrics(primary(), "test", 2, "0.1.0", kNow));
    CHECK(at(p, "pgrm_primary") == "1");
    CHECK(at(p, "pgrm_writable_primary") == "1");
    CHECK(at(p, "pgrm_wal_current_bytes") == std::to_string(0x3000000));
    CHECK(at(p, "pgrm_lag_bytes") == "absent");
    CHECK(at(p, "pgrm_apply_lag_seconds") == "absent");
    CHECK(at(p, "pgrm_server_up") == "1");

    Snapshot down;
    down.state = State::LocalServerDown;
    down.started = kNow.wall - 1s;
    down.started_steady = kNow.steady - 1s;
    down.liveness = 10s;
    Scrape d = parse(render_metrics(down, "test", 2, "0.1.0", kNow));
    CHECK(at(d, "pgrm_server_up") == "0");
    CHECK(at(d, "pgrm_timeline") == "absent");
    CHECK(at(d, "pgrm_last_check_success_timestamp_seconds") == "absent");  // never
    CHECK(at(d, "pgrm_state", "state=\"local_server_down\"") == "1");

    std::string text = render_metrics(down, "a\"b\\c\nd", 2, "0.1.0", kNow);
    CHECK(text.find("pgrm_up{cluster=\"a\\\"b\\\\c\\nd\",node_id=\"2\"} 1\n") != std::string::npos);
}

namespace {

// The HTTP server itself on a loopback port the kernel chose, answering from a fixed
// snapshot (no pass ever ran: the health paths answer 503).
struct Served {
    int port = 0;
    std::unique_ptr<HttpServer> server;
    Served() {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd, 128) == 0);
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port = ntohs(a.sin_port);
        server = std::make_unique<HttpServer>(fd, Config{}, [] { return Snapshot{}; },
                                              [] { return nlohmann::json::object(); });
    }
};

int connect_to(int port, const std::string& send = "") {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    if (!send.empty()) REQUIRE(::send(fd, send.data(), send.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(send.size()));
    return fd;
}

// What the server sent until it closed the connection, or within passed.
std::string read_all(int fd, std::chrono::milliseconds within) {
    std::string got;
    auto until = std::chrono::steady_clock::now() + within;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return got;
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return got;
        got.append(buf, static_cast<size_t>(n));
    }
}

// The server closed the connection (the end of the stream, or a reset) within that
// time, whatever it sent before.
bool closed_within(int fd, std::chrono::milliseconds within) {
    auto until = std::chrono::steady_clock::now() + within;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
        char buf[4096];
        if (::recv(fd, buf, sizeof buf, 0) <= 0) return true;
    }
}

// Nothing to read yet: neither an answer nor the end of the connection.
bool quiet(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
}

// The server destroyed from another thread; false when that did not end within a while.
bool stops(std::unique_ptr<Served>& served) {
    auto done = std::make_shared<std::promise<void>>();
    auto ended = done->get_future();
    std::thread([&served, done] {
        served.reset();
        done->set_value();
    }).detach();
    return ended.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
}

}  // namespace

TEST_CASE("a head that ends in a bare LF holds no worker: it waits in the accepting thread, and gets 408", "[http]") {
    Served srv;
    // Twice as many as there are workers: each held one for http_io before.
    std::vector<int> bad;
    for (int i = 0; i < 8; ++i) bad.push_back(connect_to(srv.port, "GET /health HTTP/1.1\r\nX: a\n\n"));
    int good = connect_to(srv.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string answer = read_all(good, std::chrono::seconds(30));
    CHECK(answer.rfind("HTTP/1.1 503", 0) == 0);
    // Answered while the bad heads still wait (http_head, 2 s): no worker held by them.
    for (int fd : bad) CHECK(quiet(fd));
    for (int fd : bad) {
        CHECK(read_all(fd, std::chrono::seconds(30)).rfind("HTTP/1.1 408", 0) == 0);
        ::close(fd);
    }
    ::close(good);
}

TEST_CASE("the server stops with clients connected, and closes their connections", "[http]") {
    auto srv = std::make_unique<Served>();
    std::vector<int> waiting;
    for (int i = 0; i < 4; ++i) waiting.push_back(connect_to(srv->port));                       // idle
    for (int i = 0; i < 4; ++i) waiting.push_back(connect_to(srv->port, "GET /health HTTP/1.1\r\n"));  // half a head
    // One answered after them: the accepting thread has taken them all.
    int good = connect_to(srv->port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(read_all(good, std::chrono::seconds(30)).rfind("HTTP/1.1 503", 0) == 0);
    ::close(good);
    REQUIRE(stops(srv));
    for (int fd : waiting) {
        INFO("connection " << fd);
        CHECK(closed_within(fd, std::chrono::seconds(10)));
        ::close(fd);
    }

    // Started and stopped at once, again and again: a worker between its check and its
    // wait must not miss the stop.
    for (int i = 0; i < 100; ++i) {
        auto quick = std::make_unique<Served>();
        REQUIRE(stops(quick));
    }
}
