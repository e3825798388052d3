#include "core/db.hpp"

#include <poll.h>

#include <cstdlib>

#include "core/error.hpp"
#include "core/log.hpp"

namespace pgrm {

namespace {

std::string trim_message(std::string m) {
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
}

// Server NOTICEs ("schema already exists, skipping") are chatter, not output.
void route_notice(void*, const char* message) {
    log::debug(trim_message(message));
}

bool password_refused(PGconn* conn, const std::string& message) {
    if (PQconnectionNeedsPassword(conn)) return true;  // asked for one and had none
    return message.find("password authentication failed") != std::string::npos ||
           message.find("no password supplied") != std::string::npos;
}

Error query_error(PGresult* res, PGconn* conn, std::string_view sql) {
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    const char* detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : nullptr;
    const char* hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : nullptr;
    const char* primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    std::string message = primary ? primary : trim_message(PQerrorMessage(conn));
    log::debug("query failed: " + std::string(sql.substr(0, 200)));
    Error e(ExitCode::DbQuery, "query failed: " + message, detail ? detail : "", hint ? hint : "");
    if (state) e.with_sqlstate(state);
    return e;
}

}  // namespace

std::optional<std::string> Rows::get_opt(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return get(row, col);
}

long long Rows::get_int(int row, int col) const {
    std::string v = get(row, col);
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0')
        throw Error(ExitCode::DbQuery, "unexpected value \"" + v + "\" in column \"" +
                                           column_name(col) + "\", expected an integer");
    return n;
}

Connection Connection::open(const std::string& conninfo, const ConnectOptions& options) {
    return open(parse_conninfo(conninfo), options);
}

Connection Connection::open(const Conninfo& given, const ConnectOptions& options) {
    Conninfo ci = given;
    ci.set_default("connect_timeout", std::to_string(options.connect_timeout.count()));
    ci.set_default("fallback_application_name", options.application_name);
    if (options.replication) {
        ci.set("replication", "true");
        ci.set_default("dbname", "replication");
    }
    std::vector<const char*> keys, values;
    for (const auto& [k, v] : ci.params) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);

    std::string description = ci.redacted();
    log::debug("connecting: " + description);
    PGconn* raw = options.deadline.count() > 0 ? PQconnectStartParams(keys.data(), values.data(), 0)
                                               : PQconnectdbParams(keys.data(), values.data(), 0);
    if (!raw) throw Error(ExitCode::DbConnection, "could not connect: out of memory");
    Connection conn(raw, description);
    PQsetNoticeProcessor(raw, route_notice, nullptr);
    if (options.deadline.count() > 0 && PQstatus(raw) != CONNECTION_BAD) {
        auto until = std::chrono::steady_clock::now() + options.deadline;
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                until - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                throw Error(ExitCode::DbConnection, "could not connect to \"" + description + "\"",
                            "no answer within " + std::to_string(options.deadline.count()) + " ms");
            pollfd pfd{PQsocket(raw), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
            int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
            if (n < 0 && errno != EINTR) break;
            if (n > 0) st = PQconnectPoll(raw);
        }
    }
    if (PQstatus(raw) != CONNECTION_OK) {
        std::string message = trim_message(PQerrorMessage(raw));
        if (password_refused(raw, message))
            throw Error(ExitCode::BadPassword, "password refused connecting to \"" +
                                                   description + "\"",
                        message, "check the password in ~/.pgpass or PGPASSFILE");
        throw Error(ExitCode::DbConnection,
                    "could not connect to \"" + description + "\"", message);
    }
    return conn;
}

Rows Connection::exec(std::string_view sql, const std::vector<Param>& params,
                      std::chrono::milliseconds timeout) {
    std::string text(sql);
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    PGconn* c = conn_.get();
    if (!c) throw Error(ExitCode::DbConnection, "connection to \"" + description_ + "\" was closed");

    if (timeout.count() == 0) {
        // Without parameters, the simple protocol: replication connections accept only it.
        PGresult* res = values.empty()
                            ? PQexec(c, text.c_str())
                            : PQexecParams(c, text.c_str(), static_cast<int>(values.size()),
                                           nullptr, values.data(), nullptr, nullptr, 0);
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            Error e = query_error(res, c, sql);
            PQclear(res);
            throw e;
        }
        return Rows(res);
    }

    // With a deadline: send, then wait on the socket; on timeout drop the connection,
    // since a hung server would also hang PQcancel.
    int sent = values.empty() ? PQsendQuery(c, text.c_str())
                              : PQsendQueryParams(c, text.c_str(), static_cast<int>(values.size()),
                                                  nullptr, values.data(), nullptr, nullptr, 0);
    if (!sent)
        throw query_error(nullptr, c, sql);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (PQisBusy(c)) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            conn_.reset();
            throw Error(ExitCode::DbConnection, "query timed out after " +
                                                    std::to_string(timeout.count()) +
                                                    " ms on \"" + description_ + "\"");
        }
        pollfd pfd{PQsocket(c), POLLIN, 0};
        int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (n < 0 && errno != EINTR) throw query_error(nullptr, c, sql);
        if (n > 0 && !PQconsumeInput(c)) throw query_error(nullptr, c, sql);
    }
    PGresult* last = nullptr;
    while (PGresult* res = PQgetResult(c)) {
        if (last) PQclear(last);
        last = res;
    }
    ExecStatusType st = last ? PQresultStatus(last) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        Error e = query_error(last, c, sql);
        PQclear(last);
        throw e;
    }
    return Rows(last);
}

long long Connection::run(std::string_view sql, const std::vector<Param>& params) {
    Rows rows = exec(sql, params);
    std::string n = rows.command_tuples();
    return n.empty() ? 0 : std::atoll(n.c_str());
}

std::string Connection::quote_identifier(std::string_view name) const {
    char* quoted = PQescapeIdentifier(conn_.get(), name.data(), name.size());
    if (!quoted) throw Error(ExitCode::DbQuery, "could not quote identifier \"" + std::string(name) + "\"");
    std::string out(quoted);
    PQfreemem(quoted);
    return out;
}

}  // namespace pgrm
