#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/health.hpp"

// etcd's v3 API (dcs = etcd) through its JSON gateway over HTTP: the same requests as
// etcd's gRPC API, as JSON, keys and values in base64 and 64-bit numbers as strings.
// etcd 3.4 (Debian 12) serves it under /v3/ (and /v3beta/); 3.3's /v3beta/ alone is not
// supported. The request bodies and the reading of answers are pure functions; Client
// sends them.
namespace pgrm::etcd {

struct KeyValue {
    std::string key;
    std::string value;
    long long create_revision = 0;
    long long mod_revision = 0;
    long long lease = 0;            // 0: none
};

struct Lease {
    long long id = 0;
    std::chrono::seconds ttl{0};    // as granted (etcd may grant more than asked)
};

// A key created only when absent (create_txn), or who holds it.
struct Created {
    bool created = false;
    std::optional<KeyValue> holder; // not created: the key as it is (gone meanwhile: none)
};

std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);  // nullopt: not base64

// The request bodies.
nlohmann::json range_request(std::string_view key);
nlohmann::json put_request(std::string_view key, std::string_view value, long long lease);
// Puts key = value under lease only if the key does not exist (create_revision 0);
// otherwise reads it, in the same transaction.
nlohmann::json create_txn(std::string_view key, std::string_view value, long long lease);
nlohmann::json grant_request(std::chrono::seconds ttl);
nlohmann::json lease_request(long long id);  // keepalive and revoke
nlohmann::json auth_request(std::string_view user, std::string_view password);
// Every key that starts with prefix: range_end is the first key past them.
std::string prefix_end(std::string_view prefix);
nlohmann::json prefix_request(std::string_view prefix);

// The answers. An answer that reports an error, or lacks what it must hold, throws
// Error(DbConnection) with a message that names what was asked.
std::vector<KeyValue> parse_range(const nlohmann::json& answer);
Created parse_create_txn(const nlohmann::json& answer);
Lease parse_grant(const nlohmann::json& answer);
// The lease's time left; 0 when etcd no longer has it (expired or revoked).
std::chrono::seconds parse_keepalive(const nlohmann::json& answer);
std::string parse_token(const nlohmann::json& answer);
// etcd's error in an answer ({"error": ..., "code": n}), or nullopt.
struct Failure {
    std::string message;
    int code = 0;                   // gRPC's: 16 Unauthenticated, 14 Unavailable, ...
};
std::optional<Failure> failure_of(const nlohmann::json& answer);
// An answer that is not JSON (a proxy's page, or etcd refusing before its gateway, such
// as 3.4 refusing a client certificate with a common name once authentication is on):
// its status and the first line of its body, control characters escaped, cut at 200.
std::string describe_non_json(int status, std::string_view body);

// What each node's repmgrd publishes under <etcd_prefix>nodes/<id> every pass (dcs =
// etcd), under a lease of its own that ends daemon_alive after its last renewal: its
// state, and what its server said about itself at the pass's start.
struct NodeState {
    int node = 0;
    std::string node_name;          // as its repmgr.conf says
    std::string daemon_state;       // repmgrd's state: "primary", "standby", "fenced", ...
    bool in_recovery = true;
    bool read_only = false;         // its configuration sets default_transaction_read_only
    int timeline = 0;
    std::optional<std::string> current_lsn;
    std::optional<std::string> receive_lsn;
    std::optional<std::string> replay_lsn;
    std::optional<std::string> receiver_status;
    long long published_at = 0;     // Unix time, seconds
};
// What a daemon in daemon_state publishes of a sample of its server.
NodeState node_state(const Config& cfg, std::string daemon_state, const NodeSample& server, long long published_at);
std::string node_state_key(const Config& cfg, int node);
nlohmann::json to_json(const NodeState& s);
// nullopt: not a state a daemon published (another program's key, or malformed).
std::optional<NodeState> parse_node_state(std::string_view value);

// One client for the endpoints of a configuration: each call tries them in turn, starting
// with the last one that answered, each with timeouts::kEtcdConnect and kEtcdRequest, so
// a call takes at most timeouts::etcd_call. An endpoint that does not answer, or answers
// that it cannot serve (no leader, unavailable), passes the call to the next; etcd's
// answer to the request itself ends it. With etcd_user, it authenticates first, and again
// when its token expired. Not thread-safe: one per thread.
class Client {
public:
    explicit Client(const Config& cfg);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    std::optional<KeyValue> get(const std::string& key);
    std::vector<KeyValue> list(const std::string& prefix);  // every key under it
    void put(const std::string& key, const std::string& value, long long lease = 0);
    Created create(const std::string& key, const std::string& value, long long lease);
    Lease grant(std::chrono::seconds ttl);
    std::chrono::seconds keepalive(long long lease);
    void revoke(long long lease);

private:
    struct Endpoint;
    nlohmann::json call(const std::string& path, const nlohmann::json& body);
    nlohmann::json call_once(const std::string& path, const nlohmann::json& body);
    void authenticate();

    Config cfg_;
    std::vector<std::unique_ptr<Endpoint>> endpoints_;
    std::size_t current_ = 0;       // the last endpoint that answered
    std::string token_;             // etcd's auth token; empty: none yet
};

}  // namespace pgrm::etcd
