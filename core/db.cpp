#include "core/db.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
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

bool has(std::string_view text, std::string_view what) { return text.find(what) != std::string_view::npos; }

bool sqlstate_char(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); }

// How long connecting may take: the deadline if given, else connect_timeout per host
// (libpq's rule: at least 2 s, 0 for ever); zero means no limit.
std::chrono::milliseconds connect_budget(const Conninfo& ci, const ConnectOptions& options) {
    if (options.deadline.count() > 0) return options.deadline;
    long long seconds = std::atoll(ci.get("connect_timeout").value_or("0").c_str());
    if (seconds <= 0) return std::chrono::milliseconds{0};
    long long hosts = 1;
    for (const char* key : {"host", "hostaddr"}) {
        std::string v = ci.get(key).value_or("");
        hosts = std::max<long long>(hosts, 1 + std::count(v.begin(), v.end(), ','));
    }
    return std::chrono::seconds(std::max(seconds, 2LL) * hosts);
}

}  // namespace

std::string_view connect_failure_name(ConnectFailure failure) {
    switch (failure) {
        case ConnectFailure::Refused: return "refused";
        case ConnectFailure::Unreachable: return "unreachable";
        case ConnectFailure::PasswordRefused: return "password_refused";
        case ConnectFailure::AuthenticationFailed: return "authentication_failed";
        case ConnectFailure::TooManyClients: return "too_many_clients";
        case ConnectFailure::StartingUp: return "starting_up";
        case ConnectFailure::ShuttingDown: return "shutting_down";
        case ConnectFailure::CrashRecovery: return "crash_recovery";
        case ConnectFailure::NotAccepting: return "not_accepting_connections";
        case ConnectFailure::ServerError: return "server_error";
        case ConnectFailure::Other: break;
    }
    return "other";
}

std::string_view describe(ConnectFailure failure) {
    switch (failure) {
        case ConnectFailure::Refused: return "connection refused";
        case ConnectFailure::Unreachable: return "unreachable";
        case ConnectFailure::PasswordRefused: return "password refused";
        case ConnectFailure::AuthenticationFailed: return "authentication failed";
        case ConnectFailure::TooManyClients: return "too many clients";
        case ConnectFailure::StartingUp: return "starting up";
        case ConnectFailure::ShuttingDown: return "shutting down";
        case ConnectFailure::CrashRecovery: return "in crash recovery";
        case ConnectFailure::NotAccepting: return "not accepting connections";
        case ConnectFailure::ServerError: return "refused the connection";
        case ConnectFailure::Other: break;
    }
    return "could not connect";
}

bool server_alive(ConnectFailure failure) {
    switch (failure) {
        case ConnectFailure::Refused:
        case ConnectFailure::Unreachable:
        case ConnectFailure::Other:
            return false;
        default:
            return true;
    }
}

ConnectMessage parse_connect_message(std::string_view verbose) {
    ConnectMessage m;
    std::string text(verbose);
    // Verbose messages put the code after the severity: "FATAL:  28P01: password ...".
    for (size_t at = text.find(":  "); at != std::string::npos; at = text.find(":  ", at + 1)) {
        size_t code = at + 3;
        if (code + 7 > text.size() || text.compare(code + 5, 2, ": ") != 0) continue;
        if (!std::all_of(text.begin() + code, text.begin() + code + 5, sqlstate_char)) continue;
        m.sqlstate = text.substr(code, 5);
        text.erase(code, 7);
        break;
    }
    size_t line_start = 0;
    while (line_start < text.size()) {
        size_t end = text.find('\n', line_start);
        size_t next = end == std::string::npos ? text.size() : end + 1;
        if (text.compare(line_start, 10, "LOCATION: ") == 0) {
            text.erase(line_start, next - line_start);
            continue;
        }
        line_start = next;
    }
    m.text = trim_message(text);
    return m;
}

ConnectFailure classify_connect_failure(std::string_view sqlstate, std::string_view message,
                                        bool needs_password) {
    using F = ConnectFailure;
    if (sqlstate == "28P01") return F::PasswordRefused;
    if (sqlstate.substr(0, 2) == "28") return F::AuthenticationFailed;
    if (sqlstate == "53300") return F::TooManyClients;
    if (sqlstate == "57P01") return F::ShuttingDown;
    if (sqlstate == "57P02") return F::CrashRecovery;
    if (sqlstate == "57P03") {
        if (has(message, "shutting down")) return F::ShuttingDown;
        if (has(message, "in recovery mode")) return F::CrashRecovery;
        if (has(message, "starting up") || has(message, "not yet accepting")) return F::StartingUp;
        return F::NotAccepting;
    }
    if (!sqlstate.empty()) return F::ServerError;

    // No SQLSTATE: libpq's own findings, or a server too old to send one.
    if (needs_password || has(message, "no password supplied") ||
        has(message, "password authentication failed"))
        return F::PasswordRefused;
    if (has(message, "pg_hba.conf")) return F::AuthenticationFailed;
    if (has(message, "too many clients") || has(message, "connection slots are reserved"))
        return F::TooManyClients;
    if (has(message, "the database system is starting up") || has(message, "not yet accepting"))
        return F::StartingUp;
    if (has(message, "the database system is shutting down")) return F::ShuttingDown;
    if (has(message, "the database system is in recovery mode")) return F::CrashRecovery;
    if (has(message, "Connection refused") || has(message, "No such file or directory"))
        return F::Refused;
    if (has(message, "timeout expired") || has(message, "timed out") ||
        has(message, "No route to host") || has(message, "unreachable") ||
        has(message, "could not translate host name"))
        return F::Unreachable;
    return F::Other;
}

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
    // Text from a database in another encoding (LATIN1) arrives as UTF-8, as the JSON
    // output and the other nodes' metadata expect.
    ci.set_default("client_encoding", "UTF8");
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
    // Polled rather than PQconnectdbParams, so verbose error messages can be asked for
    // before the server answers: they carry the SQLSTATE of its refusal.
    PGconn* raw = PQconnectStartParams(keys.data(), values.data(), 0);
    if (!raw) throw ConnectionError(ConnectFailure::Other, "could not connect: out of memory");
    Connection conn(raw, description);
    PQsetNoticeProcessor(raw, route_notice, nullptr);
    PQsetErrorVerbosity(raw, PQERRORS_VERBOSE);
    std::chrono::milliseconds budget = connect_budget(ci, options);
    auto until = std::chrono::steady_clock::now() + budget;
    PostgresPollingStatusType st = PQstatus(raw) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int wait_ms = -1;
        if (budget.count() > 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                until - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                throw ConnectionError(ConnectFailure::Unreachable,
                                      "could not connect to \"" + description + "\"",
                                      "no answer within " + std::to_string(budget.count()) + " ms");
            wait_ms = static_cast<int>(left.count());
        }
        pollfd pfd{PQsocket(raw), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
        int n = ::poll(&pfd, 1, wait_ms);
        if (n < 0 && errno != EINTR) break;
        if (n > 0) st = PQconnectPoll(raw);
    }
    if (PQstatus(raw) != CONNECTION_OK) {
        ConnectMessage m = parse_connect_message(PQerrorMessage(raw));
        ConnectFailure failure = classify_connect_failure(m.sqlstate, m.text, PQconnectionNeedsPassword(raw));
        log::debug("connection failed (" + std::string(connect_failure_name(failure)) +
                   (m.sqlstate.empty() ? "" : ", SQLSTATE " + m.sqlstate) + ")");
        if (failure == ConnectFailure::PasswordRefused)
            throw ConnectionError(failure, "password refused connecting to \"" + description + "\"",
                                  m.text, "check the password in ~/.pgpass or PGPASSFILE");
        throw ConnectionError(failure, "could not connect to \"" + description + "\"", m.text);
    }
    PQsetErrorVerbosity(raw, PQERRORS_DEFAULT);
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
            throw QueryTimedOut("query timed out after " + std::to_string(timeout.count()) + " ms on \"" +
                                description_ + "\"");
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

bool Connection::hung_up(std::chrono::milliseconds wait) {
    if (!ok()) return true;
    pollfd pfd{PQsocket(conn_.get()), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(wait.count())) <= 0) return false;
    PQconsumeInput(conn_.get());
    return PQstatus(conn_.get()) != CONNECTION_OK;
}

bool Connection::notified(std::chrono::milliseconds wait) {
    if (!ok()) return false;
    pollfd pfd{PQsocket(conn_.get()), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(wait.count())) > 0) PQconsumeInput(conn_.get());
    bool any = false;
    while (PGnotify* n = PQnotifies(conn_.get())) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

std::string Connection::quote_identifier(std::string_view name) const {
    char* quoted = PQescapeIdentifier(conn_.get(), name.data(), name.size());
    if (!quoted) throw Error(ExitCode::DbQuery, "could not quote identifier \"" + std::string(name) + "\"");
    std::string out(quoted);
    PQfreemem(quoted);
    return out;
}

}  // namespace pgrm
