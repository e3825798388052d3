#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "core/node_identity.hpp"

using namespace pgrm;

namespace {

// A DNS of its own: no test depends on the machine's.
std::vector<std::string> fake_dns(const std::string& host) {
    static const std::map<std::string, std::vector<std::string>> names = {
        {"localhost", {"::1", "127.0.0.1"}},
        {"node1", {"10.0.0.1"}},
        {"node1.example.com", {"10.0.0.1"}},
        {"node2", {"::ffff:10.0.0.2"}},
        {"dual", {"10.0.0.3", "fd00::3"}},
    };
    auto it = names.find(host);
    return it == names.end() ? std::vector<std::string>{} : it->second;
}

bool same(const std::string& host_a, const std::string& port_a, const std::string& host_b,
          const std::string& port_b) {
    return same_server(Endpoint{host_a, port_a}, Endpoint{host_b, port_b}, fake_dns);
}

// Sets an environment variable for one scope.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value) ::setenv(name, value, 1); else ::unsetenv(name);
    }
    ~ScopedEnv() {
        if (old_) ::setenv(name_, old_->c_str(), 1); else ::unsetenv(name_);
    }

private:
    const char* name_;
    std::optional<std::string> old_;
};

Node node(int id, const std::string& conninfo, bool active = true) {
    Node n;
    n.id = id;
    n.conninfo = conninfo;
    n.active = active;
    return n;
}

}  // namespace

TEST_CASE("a host name is the same server as its addresses", "[node_identity]") {
    ScopedEnv port("PGPORT", nullptr);
    CHECK(same("localhost", "5432", "127.0.0.1", "5432"));
    CHECK(same("localhost", "5432", "::1", "5432"));
    CHECK(same("node1", "5432", "10.0.0.1", "5432"));
    CHECK(same("node1", "5432", "node1.example.com", "5432"));
    CHECK(same("dual", "5432", "fd00::3", "5432"));
    CHECK_FALSE(same("node1", "5432", "node2", "5432"));
    CHECK_FALSE(same("localhost", "5432", "10.0.0.1", "5432"));
    // An IPv4-mapped IPv6 address is the IPv4 address.
    CHECK(same("node2", "5432", "10.0.0.2", "5432"));
    CHECK(same("::ffff:127.0.0.1", "5432", "127.0.0.1", "5432"));
}

TEST_CASE("addresses compare by value, loopbacks of both families are two servers", "[node_identity]") {
    CHECK(same("0:0:0:0:0:0:0:1", "5432", "::1", "5432"));
    CHECK(same("FD00::3", "5432", "fd00:0::3", "5432"));
    CHECK_FALSE(same("127.0.0.1", "5432", "::1", "5432"));
    CHECK_FALSE(same("127.0.0.1", "5432", "127.0.0.2", "5432"));
}

TEST_CASE("the port must match; an empty one is PGPORT, else 5432", "[node_identity]") {
    {
        ScopedEnv port("PGPORT", nullptr);
        CHECK_FALSE(same("10.0.0.1", "5432", "10.0.0.1", "5433"));
        CHECK(same("10.0.0.1", "", "10.0.0.1", "5432"));
        CHECK(same("10.0.0.1", "05432", "10.0.0.1", "5432"));
    }
    ScopedEnv port("PGPORT", "5433");
    CHECK(same("10.0.0.1", "", "10.0.0.1", "5433"));
    CHECK_FALSE(same("10.0.0.1", "", "10.0.0.1", "5432"));
}

TEST_CASE("a name that does not resolve matches only itself, in any case", "[node_identity]") {
    CHECK(same("ghost", "5432", "ghost", "5432"));
    CHECK(same("Ghost.Example.", "5432", "ghost.example", "5432"));
    CHECK_FALSE(same("ghost", "5432", "10.0.0.9", "5432"));
    CHECK_FALSE(same("ghost", "5432", "phantom", "5432"));
}

TEST_CASE("socket directories compare by their canonical path", "[node_identity]") {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("pgrm-identity-" + std::to_string(::getpid()));
    fs::create_directories(dir / "sockets");
    fs::create_directory_symlink(dir / "sockets", dir / "link");
    std::string real = (dir / "sockets").string();
    CHECK(same(real, "5432", real + "/", "5432"));
    CHECK(same(real, "5432", (dir / "link").string(), "5432"));
    CHECK(same(real, "5432", (dir / "." / "sockets").string(), "5432"));
    CHECK_FALSE(same(real, "5432", real, "5433"));
    CHECK_FALSE(same(real, "5432", (dir / "other").string(), "5432"));
    // A socket is never taken for a TCP address, even on this machine.
    CHECK_FALSE(same(real, "5432", "localhost", "5432"));
    fs::remove_all(dir);
}

TEST_CASE("an empty host is PGHOST, else libpq's default socket directory", "[node_identity]") {
    {
        ScopedEnv host("PGHOST", nullptr);
        NormalEndpoint n = normalise(Endpoint{"", "5432"}, fake_dns);
        CHECK(n.socket);
        CHECK(same("", "5432", n.socket_directory, "5432"));
        CHECK_FALSE(same("", "5432", "localhost", "5432"));
    }
    ScopedEnv host("PGHOST", "node1");
    CHECK(same("", "5432", "10.0.0.1", "5432"));
}

TEST_CASE("a conninfo's endpoints pair hosts, host addresses and ports as libpq does", "[node_identity]") {
    auto eps = endpoints_of(parse_conninfo("host=a,b port=5432,5433"));
    REQUIRE(eps.size() == 2);
    CHECK(eps[1].host == "b");
    CHECK(eps[1].port == "5433");
    eps = endpoints_of(parse_conninfo("host=a,b port=6000"));
    CHECK(eps[0].port == "6000");
    CHECK(eps[1].port == "6000");
    // hostaddr is what libpq connects to.
    eps = endpoints_of(parse_conninfo("host=db.example.com hostaddr=10.0.0.7"));
    REQUIRE(eps.size() == 1);
    CHECK(eps[0].host == "10.0.0.7");
    eps = endpoints_of(parse_conninfo("dbname=x"));
    REQUIRE(eps.size() == 1);
    CHECK(eps[0].host.empty());
    CHECK_THROWS_AS(endpoints_of(parse_conninfo("host=a,b,c port=1,2")), Error);
    CHECK_THROWS_AS(endpoints_of(parse_conninfo("host=a,b hostaddr=10.0.0.1")), Error);
}

TEST_CASE("the registered node at an endpoint", "[node_identity]") {
    ScopedEnv port("PGPORT", nullptr);
    std::vector<Node> nodes = {
        node(1, "host=127.0.0.1 port=5433 dbname=x"),
        node(2, "host=node2 dbname=x"),
        node(3, "host=/tmp/pgrm-sockets port=5434"),
        node(4, "host=node1 port=5435", false),
        node(5, "host=10.0.0.1 port=5435"),
        node(6, "host='unterminated"),
        node(7, "host=other,localhost port=5436,5437"),
    };
    CHECK(node_at(nodes, {"localhost", "5433"}, fake_dns) == 1);
    CHECK(node_at(nodes, {"127.0.0.1", "5433"}, fake_dns) == 1);
    CHECK(node_at(nodes, {"10.0.0.2", "5432"}, fake_dns) == 2);
    CHECK(node_at(nodes, {"node2", ""}, fake_dns) == 2);
    CHECK(node_at(nodes, {"/tmp/pgrm-sockets/", "5434"}, fake_dns) == 3);
    // The active node before an inactive one at the same place.
    CHECK(node_at(nodes, {"node1.example.com", "5435"}, fake_dns) == 5);
    CHECK(node_at(nodes, {"127.0.0.1", "5437"}, fake_dns) == 7);
    CHECK_FALSE(node_at(nodes, {"node2", "5433"}, fake_dns));
    CHECK_FALSE(node_at(nodes, {"127.0.0.1", "5436"}, fake_dns));
    CHECK_FALSE(node_at({}, {"node2", "5432"}, fake_dns));
}

TEST_CASE("names are resolved only when no conninfo spells the host alike", "[node_identity]") {
    int lookups = 0;
    Resolver counting = [&](const std::string& host) {
        ++lookups;
        return fake_dns(host);
    };
    std::vector<Node> nodes = {node(1, "host=node1 port=5432"), node(2, "host=node2 port=5432")};
    CHECK(node_at(nodes, {"node2", "5432"}, counting) == 2);
    CHECK(lookups == 0);
    CHECK(node_at(nodes, {"10.0.0.2", "5432"}, counting) == 2);
    CHECK(lookups == 2);  // each name once
}

TEST_CASE("the system resolver gives numeric addresses", "[node_identity]") {
    CHECK(resolve_host("127.0.0.1") == std::vector<std::string>{"127.0.0.1"});
    auto local = resolve_host("localhost");
    CHECK(std::find(local.begin(), local.end(), "127.0.0.1") != local.end());
}
