#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <libpq-fe.h>

#include "core/conninfo.hpp"
#include "core/timeouts.hpp"

namespace pgrm {

using Param = std::optional<std::string>;  // nullopt is SQL NULL

// The rows of one query, owned; cells read as text as libpq gives them.
class Rows {
public:
    explicit Rows(PGresult* res) : res_(res, PQclear) {}
    int size() const { return PQntuples(res_.get()); }
    bool empty() const { return size() == 0; }
    int columns() const { return PQnfields(res_.get()); }
    std::string column_name(int col) const { return PQfname(res_.get(), col); }
    bool is_null(int row, int col) const { return PQgetisnull(res_.get(), row, col); }
    std::string get(int row, int col) const { return PQgetvalue(res_.get(), row, col); }
    std::optional<std::string> get_opt(int row, int col) const;
    long long get_int(int row, int col) const;   // throws Error(DbQuery) if not a number
    bool get_bool(int row, int col) const { return get(row, col) == "t"; }
    std::string command_tuples() const { return PQcmdTuples(res_.get()); }

private:
    std::unique_ptr<PGresult, decltype(&PQclear)> res_;
};

struct ConnectOptions {
    std::chrono::seconds connect_timeout = timeouts::kConnect;  // added only when the conninfo has none
    std::string application_name = "pgrm";  // as fallback_application_name
    bool replication = false;             // a physical replication connection
    // When set, connect without blocking and give up after this long: libpq's own
    // connect_timeout cannot go below 2 s, too slow to notice a frozen server.
    std::chrono::milliseconds deadline{0};
};

// One libpq connection. Connecting: errors become pgrm::Error with
// ERR_BAD_PASSWORD (9) for a refused or missing password, ERR_DB_CON (6) otherwise.
// Queries: values always go as $n parameters (a query without any uses the simple
// protocol, so it may hold several statements and works on replication connections); failures are ERR_DB_QUERY (7) carrying
// the SQLSTATE. A query with a timeout gives up after it and closes the connection, so
// a hung server cannot freeze the caller.
class Connection {
public:
    static Connection open(const Conninfo& conninfo, const ConnectOptions& options = {});
    static Connection open(const std::string& conninfo, const ConnectOptions& options = {});

    Rows exec(std::string_view sql, const std::vector<Param>& params = {},
              std::chrono::milliseconds timeout = std::chrono::milliseconds{0});
    // For statements whose rows do not matter; returns the affected row count.
    long long run(std::string_view sql, const std::vector<Param>& params = {});
    // A SQL identifier, quoted by libpq: "repmgr_my cluster".
    std::string quote_identifier(std::string_view name) const;

    int server_version() const { return PQserverVersion(conn_.get()); }  // 150018
    bool ok() const { return conn_ && PQstatus(conn_.get()) == CONNECTION_OK; }
    PGconn* raw() const { return conn_.get(); }
    // The conninfo it was opened with, password hidden: for messages.
    const std::string& describe() const { return description_; }

private:
    Connection(PGconn* conn, std::string description)
        : conn_(conn, PQfinish), description_(std::move(description)) {}
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
    std::string description_;
};

}  // namespace pgrm
