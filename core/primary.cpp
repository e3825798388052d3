#include "core/primary.hpp"

#include <exception>
#include <future>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/server.hpp"
#include "core/timeouts.hpp"

namespace pgrm {

namespace {

const char* const kInRecoverySql = "SELECT pg_catalog.pg_is_in_recovery()";
// Read-only as cluster show judges it: only the server's own configuration counts, not
// a value set for this session.
const char* const kAcceptsWritesSql =
    "SELECT NOT pg_catalog.pg_is_in_recovery() AND NOT coalesce("
    "  (SELECT s.setting = 'on' AND s.source = 'configuration file' "
    "     FROM pg_catalog.pg_settings AS s WHERE s.name = 'default_transaction_read_only'), false)";

}  // namespace

PrimaryLink connect_primary(Connection& local, const std::string& cluster, const ConnectOptions& options) {
    Metadata local_meta(local, cluster);
    local_meta.require_installed();
    std::optional<Node> primary = local_meta.active_primary();
    if (!primary)
        throw Error(ExitCode::BadConfig, "cluster \"" + cluster + "\" has no active primary registered", "",
                    "run \"repmgr master register\" on the primary");
    Connection conn = Connection::open(primary->conninfo, options);
    if (conn.exec(kInRecoverySql).get_bool(0, 0))
        throw Error(ExitCode::BadConfig,
                    "registered primary node " + std::to_string(primary->id) + " (\"" + primary->name +
                        "\") is in recovery",
                    "", "promote a standby, or register the current primary with \"repmgr master register --force\"");
    return {std::move(*primary), std::move(conn)};
}

std::optional<Connection> connect_node(const Node& node, const std::string& hint, const ConnectOptions& options) {
    std::string who = "node " + std::to_string(node.id) + " (\"" + node.name + "\")";
    try {
        return Connection::open(node.conninfo, options);
    } catch (const ConnectionError& e) {
        if (!e.server_alive()) {
            log::info(who + " is not reachable (" + std::string(describe(e.failure())) + "): " + e.what());
            return std::nullopt;
        }
        throw ConnectionError(e.failure(),
                              who + " is running but refused our connection: " + std::string(describe(e.failure())),
                              e.detail(), hint);
    }
}

std::optional<bool> accepts_writes(const Node& node, const std::string& hint) {
    std::optional<Connection> conn = connect_node(node, hint);
    if (!conn) return std::nullopt;
    try {
        return conn->exec(kAcceptsWritesSql, {}, timeouts::kProbeQuery).get_bool(0, 0);
    } catch (const Error& e) {
        log::info("could not ask node " + std::to_string(node.id) + " whether it accepts writes: " + e.what());
        return std::nullopt;
    }
}

std::vector<std::optional<bool>> in_recovery_each(const std::vector<Node>& nodes, const std::string& hint) {
    std::vector<std::future<std::optional<bool>>> asked;
    for (const Node& n : nodes)
        asked.push_back(std::async(std::launch::async, [&n, &hint]() -> std::optional<bool> {
            std::optional<Connection> conn = connect_node(n, hint);
            if (!conn) return std::nullopt;
            return query_in_recovery(*conn, timeouts::kProbeQuery);
        }));
    std::vector<std::optional<bool>> out;
    std::exception_ptr first;
    for (auto& a : asked) {
        try {
            out.push_back(a.get());
        } catch (...) {
            if (!first) first = std::current_exception();
            out.emplace_back();
        }
    }
    if (first) std::rethrow_exception(first);
    return out;
}

}  // namespace pgrm
