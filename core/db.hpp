#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <libpq-fe.h>

#include "core/conninfo.hpp"
#include "core/error.hpp"
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

// Why a connection attempt failed, decided once here from what libpq and the server said,
// so that every command draws the same conclusion from it. A server that answered with
// a refusal is running (server_alive): a primary that refuses our password, has no slot
// left or is starting up may take writes a moment later, so it is never "gone".
enum class ConnectFailure {
    Refused,               // nothing listens there: connection refused, no socket file
    Unreachable,           // no answer in time, no route to it, host name unknown
    PasswordRefused,       // wrong password (28P01), or one was asked for and none given
    AuthenticationFailed,  // otherwise not let in (28xxx): pg_hba.conf, no such role
    TooManyClients,        // no connection slot left for us (53300)
    StartingUp,            // 57P03: starting, or not yet consistent
    ShuttingDown,          // 57P03 while shutting down, 57P01
    CrashRecovery,         // 57P03 "in recovery mode" after a crash, 57P02
    NotAccepting,          // 57P03 otherwise: a standby with hot_standby off
    ServerError,           // another error from the server: no such database, ...
    Other,                 // on our side: a bad option, SSL, out of memory
};

// Its name in JSON: "password_refused".
std::string_view connect_failure_name(ConnectFailure failure);
// For messages and cluster show: "password refused".
std::string_view describe(ConnectFailure failure);
// True when the server answered, so it runs even though we could not use it.
bool server_alive(ConnectFailure failure);

// libpq's message for a failed attempt, made with verbose error verbosity, split into
// the SQLSTATE the server sent (empty when none: the failure was on our side or the
// network's) and the message without that code and without LOCATION lines.
struct ConnectMessage {
    std::string sqlstate;
    std::string text;
};
ConnectMessage parse_connect_message(std::string_view verbose);

// The class of a failed attempt: from the server's SQLSTATE when it sent one (57P03 is
// told apart by its English message, else NotAccepting), else from libpq's own message
// (English: pgrm does not set a locale) and PQconnectionNeedsPassword.
ConnectFailure classify_connect_failure(std::string_view sqlstate, std::string_view message,
                                        bool needs_password);

// A failed connection attempt: ERR_BAD_PASSWORD (9) for a refused or missing password,
// ERR_DB_CON (6) otherwise, as before the classes existed. Catch it as Error where the
// class does not matter.
class ConnectionError : public Error {
public:
    ConnectionError(ConnectFailure failure, const std::string& message, std::string detail = {},
                    std::string hint = {})
        : Error(failure == ConnectFailure::PasswordRefused ? ExitCode::BadPassword
                                                           : ExitCode::DbConnection,
                message, std::move(detail), std::move(hint)),
          failure_(failure) {}

    ConnectFailure failure() const { return failure_; }
    bool server_alive() const { return pgrm::server_alive(failure_); }

private:
    ConnectFailure failure_;
};

// A query given a timeout that passed without an answer (the connection is dropped):
// the server, or the network, is silent, which a server that failed the query, or
// closed the connection, is not.
class QueryTimedOut : public Error {
public:
    explicit QueryTimedOut(const std::string& message) : Error(ExitCode::DbConnection, message) {}
};

struct ConnectOptions {
    // Added only when the conninfo has none. Connecting polls libpq (so the server's
    // SQLSTATE can be asked for), which leaves the timeout to us: connect_timeout per
    // host of the conninfo, at least 2 s, as libpq counts it; 0 waits for ever.
    std::chrono::seconds connect_timeout = timeouts::kConnect;
    std::string application_name = "pgrm";  // as fallback_application_name
    bool replication = false;             // a physical replication connection
    // When set, give up after this long instead: libpq's own connect_timeout cannot go
    // below 2 s, too slow to notice a frozen server.
    std::chrono::milliseconds deadline{0};
};

// One libpq connection. Connecting: a failure throws ConnectionError, classified.
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
    // Waits up to `wait` for the server to send anything; true when the connection is
    // then closed: a killed server's backend hangs up at once, so a caller sleeping on
    // this notices it without asking.
    bool hung_up(std::chrono::milliseconds wait);
    // Waits up to `wait` for the server to send anything; true when a NOTIFY for a channel
    // this session LISTENs to has arrived (all pending ones are consumed).
    bool notified(std::chrono::milliseconds wait);
    // The conninfo it was opened with, password hidden: for messages.
    const std::string& describe() const { return description_; }

private:
    Connection(PGconn* conn, std::string description)
        : conn_(conn, PQfinish), description_(std::move(description)) {}
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn_;
    std::string description_;
};

}  // namespace pgrm
