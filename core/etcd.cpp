#include "core/etcd.hpp"

#include <charconv>
#include <climits>
#include <utility>

#include <httplib.h>
#include <openssl/x509.h>

#include "core/error.hpp"
#include "core/result.hpp"
#include "core/timeouts.hpp"

namespace pgrm::etcd {

using nlohmann::json;

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// gRPC's codes for "this member cannot serve now": the next endpoint may.
constexpr int kUnavailable = 14;
constexpr int kDeadlineExceeded = 4;
constexpr int kUnauthenticated = 16;

[[noreturn]] void bad_answer(const std::string& what) { throw Error(ExitCode::DbConnection, "etcd: " + what); }

// A 64-bit number as the gateway writes it (a string), or as a plain number; absent: 0.
long long number(const json& object, const char* field) {
    if (!object.is_object() || !object.contains(field)) return 0;
    const json& v = object.at(field);
    if (v.is_number_integer()) return v.get<long long>();
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        long long n = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec == std::errc() && end == s.data() + s.size()) return n;
    }
    bad_answer(std::string("malformed answer: \"") + field + "\" is not a number");
}

std::string decoded(const json& object, const char* field) {
    if (!object.contains(field)) return "";
    const json& v = object.at(field);
    auto bytes = v.is_string() ? base64_decode(v.get_ref<const std::string&>()) : std::nullopt;
    if (!bytes) bad_answer(std::string("malformed answer: \"") + field + "\" is not base64");
    return *bytes;
}

KeyValue key_value(const json& kv) {
    if (!kv.is_object()) bad_answer("malformed answer: a key is not an object");
    return {decoded(kv, "key"), decoded(kv, "value"), number(kv, "create_revision"), number(kv, "mod_revision"),
            number(kv, "lease")};
}

void throw_failure(const json& answer, const std::string& what) {
    if (auto f = failure_of(answer)) bad_answer(what + ": " + f->message);
    if (!answer.is_object()) bad_answer(what + ": malformed answer");
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
        if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        if (i + 2 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 2]);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        unsigned n = 0;
        int pad = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const char c = text[i + k];
            unsigned v = 0;
            if (c == '=') {
                // Only at the end, at most two, and nothing after one.
                if (i + 4 != text.size() || k < 2) return std::nullopt;
                ++pad;
            } else {
                if (pad > 0) return std::nullopt;
                auto at = kAlphabet.find(c);
                if (at == std::string_view::npos) return std::nullopt;
                v = static_cast<unsigned>(at);
            }
            n = (n << 6) | v;
        }
        out += static_cast<char>((n >> 16) & 0xFF);
        if (pad < 2) out += static_cast<char>((n >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(n & 0xFF);
    }
    return out;
}

json range_request(std::string_view key) { return {{"key", base64_encode(key)}}; }

json put_request(std::string_view key, std::string_view value, long long lease) {
    json body = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease != 0) body["lease"] = std::to_string(lease);
    return body;
}

json create_txn(std::string_view key, std::string_view value, long long lease) {
    return {{"compare", json::array({{{"key", base64_encode(key)},
                                      {"target", "CREATE"},
                                      {"result", "EQUAL"},
                                      {"create_revision", "0"}}})},
            {"success", json::array({{{"request_put", put_request(key, value, lease)}}})},
            {"failure", json::array({{{"request_range", range_request(key)}}})}};
}

std::string prefix_end(std::string_view prefix) {
    std::string end(prefix);
    while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xFF) end.pop_back();
    if (end.empty()) return std::string(1, '\0');  // etcd's "every key from the start"
    end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
    return end;
}

json prefix_request(std::string_view prefix) {
    return {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}};
}

json grant_request(std::chrono::seconds ttl) { return {{"TTL", std::to_string(ttl.count())}}; }

json lease_request(long long id) { return {{"ID", std::to_string(id)}}; }

json auth_request(std::string_view user, std::string_view password) {
    return {{"name", user}, {"password", password}};
}

std::optional<Failure> failure_of(const json& answer) {
    if (!answer.is_object() || !answer.contains("error")) return std::nullopt;
    // Unary calls: {"error": "...", "code": n}; a stream's (keepalive): {"error": {...}}.
    const json& e = answer.at("error");
    const json& where = e.is_object() ? e : answer;
    Failure f;
    if (where.contains("message") && where.at("message").is_string()) f.message = where.at("message").get<std::string>();
    else if (e.is_string()) f.message = e.get<std::string>();
    else f.message = "unknown error";
    for (const char* field : {"code", "grpc_code"})
        if (where.contains(field) && where.at(field).is_number_integer()) f.code = where.at(field).get<int>();
    return f;
}

std::string describe_non_json(int status, std::string_view body) {
    std::string_view line = body.substr(0, body.find_first_of("\r\n"));
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
    if (line.empty()) return "HTTP " + std::to_string(status) + " without a JSON answer";
    constexpr std::size_t kMost = 200;
    const bool cut = line.size() > kMost;
    return "HTTP " + std::to_string(status) + ": " + escape_control(line.substr(0, kMost)) + (cut ? "..." : "");
}

std::vector<KeyValue> parse_range(const json& answer) {
    throw_failure(answer, "range");
    std::vector<KeyValue> out;
    if (!answer.contains("kvs")) return out;
    if (!answer.at("kvs").is_array()) bad_answer("range: malformed answer: \"kvs\" is not a list");
    for (const auto& kv : answer.at("kvs")) out.push_back(key_value(kv));
    return out;
}

Created parse_create_txn(const json& answer) {
    throw_failure(answer, "txn");
    Created c;
    c.created = answer.contains("succeeded") && answer.at("succeeded") == true;
    if (c.created) return c;
    // The failure branch's range: the key as it was.
    if (answer.contains("responses") && answer.at("responses").is_array())
        for (const auto& r : answer.at("responses"))
            if (r.is_object() && r.contains("response_range")) {
                auto kvs = parse_range(r.at("response_range"));
                if (!kvs.empty()) c.holder = kvs.front();
            }
    return c;
}

Lease parse_grant(const json& answer) {
    throw_failure(answer, "lease grant");
    Lease l{number(answer, "ID"), std::chrono::seconds(number(answer, "TTL"))};
    if (l.id == 0 || l.ttl.count() <= 0) bad_answer("lease grant: no lease in the answer");
    return l;
}

std::chrono::seconds parse_keepalive(const json& answer) {
    throw_failure(answer, "lease keepalive");
    // A stream's answer comes as {"result": {...}}; no TTL: the lease is gone.
    const json& r = answer.contains("result") ? answer.at("result") : answer;
    return std::chrono::seconds(std::max(number(r, "TTL"), 0LL));
}

std::string parse_token(const json& answer) {
    throw_failure(answer, "authenticate");
    if (!answer.contains("token") || !answer.at("token").is_string()) bad_answer("authenticate: no token in the answer");
    return answer.at("token").get<std::string>();
}

NodeState node_state(const Config& cfg, std::string daemon_state, const NodeSample& server, long long published_at) {
    NodeState s;
    s.node = cfg.node;
    s.node_name = cfg.node_name;
    s.daemon_state = std::move(daemon_state);
    s.in_recovery = server.in_recovery;
    s.read_only = server.read_only;
    s.timeline = server.timeline;
    s.current_lsn = server.current_lsn;
    s.receive_lsn = server.receive_lsn;
    s.replay_lsn = server.replay_lsn;
    s.receiver_status = server.receiver_status;
    s.published_at = published_at;
    return s;
}

std::string node_state_key(const Config& cfg, int node) { return cfg.etcd_prefix + "nodes/" + std::to_string(node); }

json to_json(const NodeState& s) {
    auto opt = [](const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); };
    return {{"node", s.node},
            {"node_name", s.node_name},
            {"daemon_state", s.daemon_state},
            {"in_recovery", s.in_recovery},
            {"read_only", s.read_only},
            {"timeline", s.timeline},
            {"current_lsn", opt(s.current_lsn)},
            {"receive_lsn", opt(s.receive_lsn)},
            {"replay_lsn", opt(s.replay_lsn)},
            {"receiver_status", opt(s.receiver_status)},
            {"published_at", s.published_at}};
}

std::optional<NodeState> parse_node_state(std::string_view value) {
    json j = json::parse(value, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    auto text = [&](const char* f) -> std::optional<std::string> {
        if (j.contains(f) && j.at(f).is_string()) return j.at(f).get<std::string>();
        return std::nullopt;
    };
    auto integer = [&](const char* f) -> std::optional<long long> {
        if (j.contains(f) && j.at(f).is_number_integer()) return j.at(f).get<long long>();
        return std::nullopt;
    };
    auto boolean = [&](const char* f) -> std::optional<bool> {
        if (j.contains(f) && j.at(f).is_boolean()) return j.at(f).get<bool>();
        return std::nullopt;
    };
    auto node = integer("node");
    auto state = text("daemon_state");
    auto in_recovery = boolean("in_recovery");
    auto at = integer("published_at");
    if (!node || *node <= 0 || *node > INT_MAX || !state || !in_recovery || !at) return std::nullopt;
    NodeState s;
    s.node = static_cast<int>(*node);
    s.node_name = text("node_name").value_or("");
    s.daemon_state = *state;
    s.in_recovery = *in_recovery;
    s.read_only = boolean("read_only").value_or(false);
    auto tl = integer("timeline").value_or(0);
    s.timeline = tl > 0 && tl <= INT_MAX ? static_cast<int>(tl) : 0;
    s.current_lsn = text("current_lsn");
    s.receive_lsn = text("receive_lsn");
    s.replay_lsn = text("replay_lsn");
    s.receiver_status = text("receiver_status");
    s.published_at = *at;
    return s;
}

// --------------------------------------------------------------------------------------
// The client

struct Client::Endpoint {
    std::string url;                // for messages
    bool tls = false;
    httplib::Client http;
    Endpoint(const std::string& u, bool https, const Config& cfg)
        : url(u), tls(https), http(u, cfg.etcd_cert, cfg.etcd_key) {}
};

namespace {

// Why a request got no answer, in the terms of the settings that decide it: httplib's
// own names (SSLServerVerification, Read) say nothing of which file to look at.
std::string describe(httplib::Error error, httplib::Client& http, bool tls, const Config& cfg) {
    using E = httplib::Error;
    const std::string cacert = cfg.etcd_cacert.empty() ? std::string("the system's certificate authorities")
                                                       : "etcd_cacert \"" + cfg.etcd_cacert + "\"";
    // A certificate or key that did not load: httplib sends nothing, and says "Success".
    if (tls && !http.is_valid())
        return "TLS: etcd_cert \"" + cfg.etcd_cert + "\" and etcd_key \"" + cfg.etcd_key +
               "\" could not be loaded as a certificate and its key";
    switch (error) {
    case E::SSLServerVerification: {
        const long v = http.get_openssl_verify_result();
        return "its TLS certificate is not trusted (" +
               std::string(v != X509_V_OK ? X509_verify_cert_error_string(v) : "its name does not match the endpoint's host") +
               ") by " + cacert;
    }
    case E::SSLLoadingCerts: return "TLS: " + cacert + " could not be loaded";
    case E::SSLConnection:
        return "TLS handshake failed" +
               std::string(cfg.etcd_cert.empty() ? " (no etcd_cert: does it require a client certificate?)"
                                                 : " (is etcd_cert signed by an authority it trusts?)");
    case E::Read:
    case E::Write:
        // With TLS 1.3 a server that refuses the client's certificate (or its absence)
        // says so after the handshake: the request then finds the connection closed.
        return std::string("the connection closed during the request") +
               (tls && cfg.etcd_cert.empty() ? " (no etcd_cert: does it require a client certificate?)" : "");
    case E::Connection: return "could not connect";
    case E::ConnectionTimeout: return "no connection within " + timeouts::format(timeouts::kEtcdConnect);
    default: return httplib::to_string(error);
    }
}

}  // namespace

Client::Client(const Config& cfg) : cfg_(cfg) {
    auto ms = [](std::chrono::milliseconds d) { return std::pair<time_t, time_t>(d.count() / 1000, d.count() % 1000 * 1000); };
    for (const auto& raw : cfg_.etcd_endpoints) {
        EtcdEndpoint e = parse_etcd_endpoint(raw);
        const std::string host = e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
        auto ep = std::make_unique<Endpoint>((e.tls ? "https://" : "http://") + host + ":" + std::to_string(e.port), e.tls,
                                             cfg_);
        auto [cs, cu] = ms(timeouts::kEtcdConnect);
        auto [rs, ru] = ms(timeouts::kEtcdRequest);
        ep->http.set_connection_timeout(cs, cu);
        ep->http.set_read_timeout(rs, ru);
        ep->http.set_write_timeout(rs, ru);
        ep->http.set_keep_alive(true);
        if (e.tls && !cfg_.etcd_cacert.empty()) ep->http.set_ca_cert_path(cfg_.etcd_cacert.c_str());
        endpoints_.push_back(std::move(ep));
    }
}

Client::~Client() = default;

json Client::call_once(const std::string& path, const json& body) {
    if (endpoints_.empty()) throw Error(ExitCode::BadConfig, "etcd: no etcd_endpoints");
    std::string failures;
    for (std::size_t tried = 0; tried < endpoints_.size(); ++tried) {
        const std::size_t i = (current_ + tried) % endpoints_.size();
        Endpoint& ep = *endpoints_[i];
        httplib::Headers headers;
        if (!token_.empty() && path != "/v3/auth/authenticate") headers.emplace("Authorization", token_);
        auto res = ep.http.Post(path.c_str(), headers, body.dump(), "application/json");
        std::string why;
        if (!res) {
            why = describe(res.error(), ep.http, ep.tls, cfg_);
        } else {
            json answer = json::parse(res->body, nullptr, false);
            if (answer.is_discarded()) {
                why = describe_non_json(res->status, res->body);
            } else {
                auto f = failure_of(answer);
                if (!f || (f->code != kUnavailable && f->code != kDeadlineExceeded)) {
                    current_ = i;
                    return answer;
                }
                why = f->message;
            }
        }
        failures += (failures.empty() ? "" : "; ") + ep.url + ": " + why;
    }
    throw Error(ExitCode::DbConnection, "etcd: no endpoint answered " + path, failures);
}

json Client::call(const std::string& path, const json& body) {
    if (!cfg_.etcd_user.empty() && token_.empty()) authenticate();
    json answer = call_once(path, body);
    // A token expires (etcd's --auth-token-ttl): once more with a fresh one.
    if (auto f = failure_of(answer); f && f->code == kUnauthenticated && !cfg_.etcd_user.empty()) {
        token_.clear();
        authenticate();
        answer = call_once(path, body);
    }
    return answer;
}

void Client::authenticate() {
    token_ = parse_token(call_once("/v3/auth/authenticate", auth_request(cfg_.etcd_user, cfg_.etcd_password)));
}

std::optional<KeyValue> Client::get(const std::string& key) {
    auto kvs = parse_range(call("/v3/kv/range", range_request(key)));
    if (kvs.empty()) return std::nullopt;
    return kvs.front();
}

std::vector<KeyValue> Client::list(const std::string& prefix) {
    return parse_range(call("/v3/kv/range", prefix_request(prefix)));
}

void Client::put(const std::string& key, const std::string& value, long long lease) {
    throw_failure(call("/v3/kv/put", put_request(key, value, lease)), "put");
}

Created Client::create(const std::string& key, const std::string& value, long long lease) {
    return parse_create_txn(call("/v3/kv/txn", create_txn(key, value, lease)));
}

Lease Client::grant(std::chrono::seconds ttl) { return parse_grant(call("/v3/lease/grant", grant_request(ttl))); }

std::chrono::seconds Client::keepalive(long long lease) {
    return parse_keepalive(call("/v3/lease/keepalive", lease_request(lease)));
}

void Client::revoke(long long lease) {
    json answer = call("/v3/lease/revoke", lease_request(lease));
    // Gone already: what revoking wanted.
    if (auto f = failure_of(answer); f && f->message.find("lease not found") != std::string::npos) return;
    throw_failure(answer, "lease revoke");
}

}  // namespace pgrm::etcd
