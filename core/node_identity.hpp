#pragma once

// Node identity: whether two ways of naming a server reach the same one, and which
// registered node a conninfo, a -h/-p pair or a WAL receiver's upstream
// (pg_stat_wal_receiver.sender_host/sender_port) is. The one place that decides it, so
// every command and repmgrd give the same answer: a host name matches its addresses,
// "localhost" matches 127.0.0.1, a socket directory matches itself however it is spelt.
//
// Typical use:
//     std::optional<int> id = node_at(nodes, Endpoint{sender_host, sender_port});
//     bool same = same_server(endpoints_of(parse_conninfo(a)), endpoints_of(parse_conninfo(b)));

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/conninfo.hpp"
#include "core/metadata.hpp"

namespace pgrm {

// Where a server listens, as a conninfo or the server names it.
struct Endpoint {
    std::string host;  // name, address or socket directory; empty: PGHOST, else libpq's
                       // default socket directory (/var/run/postgresql)
    std::string port;  // empty: PGPORT, else 5432
};

// A host name to its addresses, numeric ("10.0.0.1", "::1"); empty when it does not
// resolve. Injectable so that tests need no DNS.
using Resolver = std::function<std::vector<std::string>(const std::string& host)>;

// The system's resolver (getaddrinfo, TCP), as libpq resolves.
std::vector<std::string> resolve_host(const std::string& host);

// Every endpoint a conninfo connects to, in libpq's order: one per entry of a host list
// ("host=a,b port=5432,5433"); hostaddr, when given, is the address connected to.
// Throws pgrm::Error(BadConfig) when port lists and host lists do not pair up.
std::vector<Endpoint> endpoints_of(const Conninfo& conninfo);

// An endpoint with its defaults applied and its host in one spelling: a socket
// directory as its canonical path, an address in canonical numeric form (an
// IPv4-mapped IPv6 address as IPv4), a name as its addresses and its lower-case name.
struct NormalEndpoint {
    bool socket = false;
    std::string socket_directory;        // socket: canonical path
    std::set<std::string> addresses;     // TCP: numeric addresses (none if a name did not resolve)
    std::string name;                    // TCP: the name given, lower case, no trailing dot
    std::string port;
};
NormalEndpoint normalise(const Endpoint& endpoint, const Resolver& resolve = resolve_host);

// True when both reach the same server: the same port, and the same socket directory or
// an address in common (or the same name, when it does not resolve). A socket directory
// never equals a TCP address: the server may listen on both, but nothing here can tell.
bool same_server(const Endpoint& a, const Endpoint& b, const Resolver& resolve = resolve_host);
// With host lists: any endpoint of a reaches a server that one of b reaches.
bool same_server(const std::vector<Endpoint>& a, const std::vector<Endpoint>& b,
                 const Resolver& resolve = resolve_host);

// The registered node whose conninfo reaches the server at where: an active one before
// an inactive one, else the lowest id; nullopt when none does. A node whose conninfo
// libpq cannot parse names no server. Names are resolved only when no conninfo names
// the same host and port in the same spelling.
std::optional<int> node_at(const std::vector<Node>& nodes, const Endpoint& where,
                           const Resolver& resolve = resolve_host);

}  // namespace pgrm
