#include "core/node_identity.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include <pg_config.h>          // DEF_PGPORT_STR
#include <pg_config_manual.h>   // DEFAULT_PGSOCKET_DIR

#include "core/error.hpp"

namespace pgrm {

namespace {

std::vector<std::string> split_list(const std::string& value) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        size_t comma = value.find(',', start);
        out.push_back(value.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

// The canonical text of a numeric address, nullopt when host is not one.
std::optional<std::string> canonical_address(const std::string& host) {
    char text[INET6_ADDRSTRLEN];
    in_addr v4;
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return inet_ntop(AF_INET, &v4, text, sizeof text);
    in6_addr v6;
    if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return std::nullopt;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
        std::memcpy(&v4, &v6.s6_addr[12], sizeof v4);
        return inet_ntop(AF_INET, &v4, text, sizeof text);
    }
    return inet_ntop(AF_INET6, &v6, text, sizeof text);
}

std::string default_host() {
    const char* env = std::getenv("PGHOST");
    if (env && *env) return split_list(env).front();
    return DEFAULT_PGSOCKET_DIR;
}

std::string default_port() {
    const char* env = std::getenv("PGPORT");
    if (env && *env) return split_list(env).front();
    return DEF_PGPORT_STR;
}

// "05432" and "5432" are one port, as libpq reads it.
std::string canonical_port(const std::string& port) {
    if (port.empty() || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return port;
    size_t first = port.find_first_not_of('0');
    return first == std::string::npos ? "0" : port.substr(first);
}

bool same(const NormalEndpoint& a, const NormalEndpoint& b) {
    if (a.port != b.port || a.socket != b.socket) return false;
    if (a.socket) return a.socket_directory == b.socket_directory;
    if (!a.name.empty() && a.name == b.name) return true;
    return std::any_of(a.addresses.begin(), a.addresses.end(),
                       [&](const std::string& addr) { return b.addresses.count(addr) > 0; });
}

// No lookups: the first pass matches what is spelt alike (or numerically equal).
const Resolver kNoLookup = [](const std::string&) { return std::vector<std::string>{}; };

// Each name looked up once per question.
Resolver memoised(const Resolver& resolve) {
    auto cache = std::make_shared<std::map<std::string, std::vector<std::string>>>();
    return [cache, resolve](const std::string& host) {
        auto it = cache->find(host);
        if (it == cache->end()) it = cache->emplace(host, resolve(host)).first;
        return it->second;
    };
}

std::vector<NormalEndpoint> normalise_all(const std::vector<Endpoint>& endpoints, const Resolver& resolve) {
    std::vector<NormalEndpoint> out;
    for (const auto& e : endpoints) out.push_back(normalise(e, resolve));
    return out;
}

bool any_same(const std::vector<NormalEndpoint>& a, const std::vector<NormalEndpoint>& b) {
    for (const auto& x : a)
        for (const auto& y : b)
            if (same(x, y)) return true;
    return false;
}

}  // namespace

std::vector<std::string> resolve_host(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return {};
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, freeaddrinfo);
    std::vector<std::string> out;
    for (addrinfo* a = found; a; a = a->ai_next) {
        char text[NI_MAXHOST];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) == 0)
            out.emplace_back(text);
    }
    return out;
}

std::vector<Endpoint> endpoints_of(const Conninfo& conninfo) {
    std::vector<std::string> hosts = split_list(conninfo.get("host").value_or(""));
    if (auto hostaddr = conninfo.get("hostaddr"); hostaddr && !hostaddr->empty()) {
        std::vector<std::string> addrs = split_list(*hostaddr);
        if (conninfo.get("host") && addrs.size() != hosts.size())
            throw Error(ExitCode::BadConfig, "conninfo lists " + std::to_string(hosts.size()) + " hosts but " +
                                                 std::to_string(addrs.size()) + " host addresses");
        // The address is what libpq connects to; an empty entry falls back to the name.
        for (size_t i = 0; i < addrs.size(); ++i)
            if (!addrs[i].empty()) (i < hosts.size() ? hosts[i] : hosts.emplace_back()) = addrs[i];
    }
    std::vector<std::string> ports = split_list(conninfo.get("port").value_or(""));
    if (ports.size() != 1 && ports.size() != hosts.size())
        throw Error(ExitCode::BadConfig, "conninfo lists " + std::to_string(hosts.size()) + " hosts but " +
                                             std::to_string(ports.size()) + " ports");
    std::vector<Endpoint> out;
    for (size_t i = 0; i < hosts.size(); ++i) out.push_back({hosts[i], ports.size() == 1 ? ports[0] : ports[i]});
    return out;
}

NormalEndpoint normalise(const Endpoint& endpoint, const Resolver& resolve) {
    NormalEndpoint n;
    n.port = canonical_port(endpoint.port.empty() ? default_port() : endpoint.port);
    std::string host = endpoint.host.empty() ? default_host() : endpoint.host;
    if (host.front() == '/' || host.front() == '@') {  // '@': Linux's abstract socket namespace
        n.socket = true;
        std::error_code ec;
        std::filesystem::path dir = host.front() == '/' ? std::filesystem::weakly_canonical(host, ec)
                                                        : std::filesystem::path(host);
        if (ec) dir = std::filesystem::path(host).lexically_normal();
        n.socket_directory = dir.string();
        while (n.socket_directory.size() > 1 && n.socket_directory.back() == '/') n.socket_directory.pop_back();
        return n;
    }
    if (auto addr = canonical_address(host)) {
        n.addresses.insert(*addr);
        return n;
    }
    n.name = host;
    std::transform(n.name.begin(), n.name.end(), n.name.begin(), [](unsigned char c) { return std::tolower(c); });
    while (!n.name.empty() && n.name.back() == '.') n.name.pop_back();
    for (const auto& a : resolve(host))
        if (auto addr = canonical_address(a)) n.addresses.insert(*addr);
    return n;
}

bool same_server(const Endpoint& a, const Endpoint& b, const Resolver& resolve) {
    return same_server(std::vector<Endpoint>{a}, std::vector<Endpoint>{b}, resolve);
}

bool same_server(const std::vector<Endpoint>& a, const std::vector<Endpoint>& b, const Resolver& resolve) {
    if (any_same(normalise_all(a, kNoLookup), normalise_all(b, kNoLookup))) return true;
    Resolver once = memoised(resolve);
    return any_same(normalise_all(a, once), normalise_all(b, once));
}

std::optional<int> node_at(const std::vector<Node>& nodes, const Endpoint& where, const Resolver& resolve) {
    std::vector<std::pair<const Node*, std::vector<Endpoint>>> candidates;
    for (const auto& n : nodes) {
        try {
            candidates.emplace_back(&n, endpoints_of(parse_conninfo(n.conninfo)));
        } catch (const Error&) {
            continue;  // a conninfo libpq cannot parse reaches no server
        }
    }
    Resolver once = memoised(resolve);
    for (const Resolver* r : {&kNoLookup, static_cast<const Resolver*>(&once)}) {
        std::vector<NormalEndpoint> target = normalise_all({where}, *r);
        const Node* found = nullptr;
        for (const auto& [node, endpoints] : candidates) {
            if (!any_same(target, normalise_all(endpoints, *r))) continue;
            if (!found || node->active > found->active ||
                (node->active == found->active && node->id < found->id))
                found = node;
        }
        if (found) return found->id;
    }
    return std::nullopt;
}

}  // namespace pgrm
