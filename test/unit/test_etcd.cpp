#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "core/etcd.hpp"

// The pure parts of the etcd client: request bodies as etcd's JSON gateway takes them,
// and its answers as etcd 3.4.23 gave them (copied from a real etcd's replies).

using nlohmann::json;
namespace etcd = pgrm::etcd;
using namespace std::chrono_literals;

TEST_CASE("base64 both ways, padding and all", "[etcd]") {
    CHECK(etcd::base64_encode("") == "");
    CHECK(etcd::base64_encode("1") == "MQ==");
    CHECK(etcd::base64_encode("/pgrm/t/leader") == "L3Bncm0vdC9sZWFkZXI=");
    CHECK(etcd::base64_encode("abc") == "YWJj");
    CHECK(etcd::base64_encode(std::string("\0\xff", 2)) == "AP8=");
    for (std::string s : {"", "a", "ab", "abc", "abcd", "\x01\x80\xfe\xff"})
        CHECK(etcd::base64_decode(etcd::base64_encode(s)) == s);
    CHECK_FALSE(etcd::base64_decode("abc"));     // not a multiple of 4
    CHECK_FALSE(etcd::base64_decode("ab=c"));    // padding inside
    CHECK_FALSE(etcd::base64_decode("a===")); // too much padding
    CHECK_FALSE(etcd::base64_decode("ab!d"));
    CHECK_FALSE(etcd::base64_decode("MQ==YWJj"));  // padding before the end
}

TEST_CASE("request bodies", "[etcd]") {
    CHECK(etcd::range_request("/pgrm/t/leader") == json{{"key", "L3Bncm0vdC9sZWFkZXI="}});
    CHECK(etcd::put_request("k", "v", 0) == json{{"key", "aw=="}, {"value", "dg=="}});
    CHECK(etcd::put_request("k", "v", 7) == json{{"key", "aw=="}, {"value", "dg=="}, {"lease", "7"}});
    CHECK(etcd::grant_request(11s) == json{{"TTL", "11"}});
    CHECK(etcd::lease_request(2324035871252755980LL) == json{{"ID", "2324035871252755980"}});
    CHECK(etcd::auth_request("u", "p") == json{{"name", "u"}, {"password", "p"}});
    json txn = etcd::create_txn("k", "1", 5);
    CHECK(txn["compare"] ==
          json::array({{{"key", "aw=="}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}}}));
    CHECK(txn["success"] == json::array({{{"request_put", {{"key", "aw=="}, {"value", "MQ=="}, {"lease", "5"}}}}}));
    CHECK(txn["failure"] == json::array({{{"request_range", {{"key", "aw=="}}}}}));
}

TEST_CASE("answers as etcd 3.4 gives them", "[etcd]") {
    const json header = {{"cluster_id", "324952591200643719"}, {"revision", "2"}, {"raft_term", "2"}};
    SECTION("range: none, then one") {
        CHECK(etcd::parse_range({{"header", header}}).empty());
        auto kvs = etcd::parse_range(json::parse(
            R"({"header":{"revision":"2"},"kvs":[{"key":"L3Bncm0vdC9sZWFkZXI=","create_revision":"2",)"
            R"("mod_revision":"2","version":"1","value":"MQ==","lease":"2324035871252755980"}],"count":"1"})"));
        REQUIRE(kvs.size() == 1);
        CHECK(kvs[0].key == "/pgrm/t/leader");
        CHECK(kvs[0].value == "1");
        CHECK(kvs[0].create_revision == 2);
        CHECK(kvs[0].lease == 2324035871252755980LL);
    }
    SECTION("txn: created, or who holds the key") {
        auto created = etcd::parse_create_txn(json::parse(
            R"({"header":{"revision":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]})"));
        CHECK(created.created);
        CHECK_FALSE(created.holder);
        auto held = etcd::parse_create_txn(json::parse(
            R"({"header":{"revision":"2"},"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[)"
            R"({"key":"aw==","create_revision":"2","mod_revision":"2","version":"1","value":"Mg==","lease":"9"}],)"
            R"("count":"1"}}]})"));
        CHECK_FALSE(held.created);
        REQUIRE(held.holder);
        CHECK(held.holder->value == "2");
        CHECK(held.holder->lease == 9);
    }
    SECTION("lease grant and keepalive") {
        auto lease = etcd::parse_grant(json::parse(R"({"header":{},"ID":"2324035871252755975","TTL":"2"})"));
        CHECK(lease.id == 2324035871252755975LL);
        CHECK(lease.ttl == 2s);
        CHECK(etcd::parse_keepalive(json::parse(R"({"result":{"header":{},"ID":"5","TTL":"11"}})")) == 11s);
        // A lease etcd no longer has: no TTL.
        CHECK(etcd::parse_keepalive(json::parse(R"({"result":{"header":{},"ID":"1"}})")) == 0s);
    }
    SECTION("errors say etcd's reason") {
        json e = json::parse(R"({"error":"etcdserver: requested lease not found",)"
                             R"("message":"etcdserver: requested lease not found","code":5})");
        auto f = etcd::failure_of(e);
        REQUIRE(f);
        CHECK(f->code == 5);
        CHECK(f->message == "etcdserver: requested lease not found");
        CHECK_THROWS_WITH(etcd::parse_range(e), "etcd: range: etcdserver: requested lease not found");
        json stream = json::parse(R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}})");
        REQUIRE(etcd::failure_of(stream));
        CHECK(etcd::failure_of(stream)->code == 14);
        CHECK_THROWS_WITH(etcd::parse_keepalive(stream), "etcd: lease keepalive: etcdserver: no leader");
        CHECK_FALSE(etcd::failure_of({{"header", header}}));
    }
}

TEST_CASE("malformed answers are errors, never a crash", "[etcd]") {
    for (const char* text : {R"([])", R"("x")", R"({"kvs":"x"})", R"({"kvs":[1]})", R"({"kvs":[{"key":"!!"}]})",
                             R"({"kvs":[{"key":"aw==","lease":"x"}]})", R"({"kvs":[{"key":"aw==","lease":[]}]})"}) {
        INFO(text);
        CHECK_THROWS_AS(etcd::parse_range(json::parse(text)), pgrm::Error);
    }
    CHECK_THROWS_AS(etcd::parse_grant(json::parse(R"({"ID":"0","TTL":"5"})")), pgrm::Error);
    CHECK_THROWS_AS(etcd::parse_grant(json::parse(R"({"TTL":"5"})")), pgrm::Error);
    CHECK_THROWS_AS(etcd::parse_token(json::parse(R"({"token":1})")), pgrm::Error);
    CHECK(etcd::parse_token(json::parse(R"({"header":{},"token":"abc.123"})")) == "abc.123");
    auto odd = etcd::parse_create_txn(json::parse(R"({"succeeded":"yes","responses":[1,{"response_range":{}}]})"));
    CHECK_FALSE(odd.created);
    CHECK_FALSE(odd.holder);
}

TEST_CASE("an answer that is not JSON says what it said", "[etcd]") {
    // etcd 3.4 with authentication on, to a client certificate with a common name.
    CHECK(etcd::describe_non_json(400, "CommonName of client sending a request against gateway will be ignored and "
                                       "not used as expected\n") ==
          "HTTP 400: CommonName of client sending a request against gateway will be ignored and not used as expected");
    CHECK(etcd::describe_non_json(502, "") == "HTTP 502 without a JSON answer");
    CHECK(etcd::describe_non_json(502, "\r\n<html>") == "HTTP 502 without a JSON answer");
    CHECK(etcd::describe_non_json(403, "no\x1b[2Jway\nmore") == "HTTP 403: no\\x1b[2Jway");
    auto long_one = etcd::describe_non_json(500, std::string(300, 'x'));
    CHECK(long_one == "HTTP 500: " + std::string(200, 'x') + "...");
}

TEST_CASE("a prefix's range ends at the first key past it", "[etcd]") {
    CHECK(etcd::prefix_end("/pgrm/t/nodes/") == "/pgrm/t/nodes0");
    CHECK(etcd::prefix_end("a\xff\xff") == "b");
    CHECK(etcd::prefix_end("\xff") == std::string(1, '\0'));
    CHECK(etcd::prefix_request("/p/") == json{{"key", "L3Av"}, {"range_end", "L3Aw"}});
}

TEST_CASE("a daemon publishes what its server sample says, under its own node", "[etcd]") {
    pgrm::Config cfg;
    cfg.node = 4;
    cfg.node_name = "node4";
    pgrm::NodeSample server;
    server.in_recovery = false;
    server.read_only = true;
    server.timeline = 7;
    server.current_lsn = "0/5000000";
    server.receiver_status = "stopping";
    etcd::NodeState s = etcd::node_state(cfg, "fenced", server, 1796000123);
    CHECK(s.node == 4);
    CHECK(s.node_name == "node4");
    CHECK(s.daemon_state == "fenced");
    CHECK_FALSE(s.in_recovery);
    CHECK(s.read_only);
    CHECK(s.timeline == 7);
    CHECK(s.current_lsn == "0/5000000");
    CHECK_FALSE(s.receive_lsn);
    CHECK_FALSE(s.replay_lsn);
    CHECK(s.receiver_status == "stopping");
    CHECK(s.published_at == 1796000123);
}

TEST_CASE("a node's published state, both ways; anything else is not one", "[etcd]") {
    pgrm::Config cfg;
    cfg.etcd_prefix = "/pgrm/t/";
    CHECK(etcd::node_state_key(cfg, 3) == "/pgrm/t/nodes/3");
    etcd::NodeState s{3,          "node 3",    "standby", true, false, 2, std::nullopt, "0/3000060", "0/3000060",
                      "streaming", 1796000000};
    auto back = etcd::parse_node_state(etcd::to_json(s).dump());
    REQUIRE(back);
    CHECK(back->node == 3);
    CHECK(back->node_name == "node 3");
    CHECK(back->daemon_state == "standby");
    CHECK(back->in_recovery);
    CHECK(back->timeline == 2);
    CHECK_FALSE(back->current_lsn);
    CHECK(back->receive_lsn == "0/3000060");
    CHECK(back->receiver_status == "streaming");
    CHECK(back->published_at == 1796000000);
    for (const char* odd : {"", "x", "[]", "{}", R"({"node":0,"daemon_state":"s","in_recovery":true,"published_at":1})",
                            R"({"node":"3","daemon_state":"s","in_recovery":true,"published_at":1})",
                            R"({"node":3,"daemon_state":1,"in_recovery":true,"published_at":1})",
                            R"({"node":3,"daemon_state":"s","in_recovery":"t","published_at":1})",
                            R"({"node":3,"daemon_state":"s","in_recovery":true})",
                            R"({"node":99999999999,"daemon_state":"s","in_recovery":true,"published_at":1})"}) {
        INFO(odd);
        CHECK_FALSE(etcd::parse_node_state(odd));
    }
    // Odd optional fields are left out, not trusted.
    auto lax = etcd::parse_node_state(R"({"node":3,"daemon_state":"s","in_recovery":false,"published_at":1,)"
                                      R"("timeline":-4,"current_lsn":7,"read_only":"yes"})");
    REQUIRE(lax);
    CHECK(lax->timeline == 0);
    CHECK_FALSE(lax->current_lsn);
    CHECK_FALSE(lax->read_only);
}
