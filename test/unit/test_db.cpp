#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/db.hpp"

using namespace pgrm;

namespace {

// libpq 15's messages for failed connections, verbatim (verbose error verbosity).
const char* const kWrongPassword =
    "connection to server at \"127.0.0.1\", port 22490 failed: FATAL:  28P01: password "
    "authentication failed for user \"postgres\"\nLOCATION:  auth_failed, auth.c:334\n";
const char* const kNoPassword =
    "connection to server at \"127.0.0.1\", port 22490 failed: fe_sendauth: no password supplied\n";
const char* const kHbaRejects =
    "connection to server at \"127.0.0.1\", port 22490 failed: FATAL:  28000: pg_hba.conf rejects "
    "connection for host \"127.0.0.1\", user \"postgres\", database \"rejected\", no encryption\n"
    "LOCATION:  ClientAuthentication, auth.c:476\n";
const char* const kTooMany =
    "connection to server at \"127.0.0.1\", port 22490 failed: FATAL:  53300: sorry, too many "
    "clients already\nLOCATION:  InitProcess, proc.c:357\n";
const char* const kStartingUp =
    "connection to server at \"127.0.0.1\", port 22490 failed: FATAL:  57P03: the database system "
    "is starting up\nLOCATION:  ProcessStartupPacket, postmaster.c:2415\n";
const char* const kNoDatabase =
    "connection to server at \"127.0.0.1\", port 22490 failed: FATAL:  3D000: database \"nosuch\" "
    "does not exist\nLOCATION:  InitPostgres, postinit.c:948\n";
const char* const kRefused =
    "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n"
    "\tIs the server running on that host and accepting TCP/IP connections?\n";
const char* const kNoSocket =
    "connection to server on socket \"/tmp/nowhere/.s.PGSQL.5\" failed: No such file or directory\n"
    "\tIs the server running locally and accepting connections on that socket?\n";

ConnectFailure classify(const char* verbose, bool needs_password = false) {
    ConnectMessage m = parse_connect_message(verbose);
    return classify_connect_failure(m.sqlstate, m.text, needs_password);
}

}  // namespace

TEST_CASE("the server's SQLSTATE is taken out of a verbose connection message", "[db]") {
    ConnectMessage m = parse_connect_message(kWrongPassword);
    CHECK(m.sqlstate == "28P01");
    CHECK(m.text == "connection to server at \"127.0.0.1\", port 22490 failed: FATAL:  password "
                    "authentication failed for user \"postgres\"");
    m = parse_connect_message(kRefused);
    CHECK(m.sqlstate.empty());
    CHECK(m.text.find("Connection refused") != std::string::npos);
    // Only a five-character code right after a severity counts.
    CHECK(parse_connect_message("failed: FATAL:  abcde: x").sqlstate.empty());
    CHECK(parse_connect_message("FATAL:  53300").sqlstate.empty());
    CHECK(parse_connect_message("").text.empty());
}

TEST_CASE("connection failures are classified from SQLSTATE and message", "[db]") {
    using F = ConnectFailure;
    CHECK(classify(kWrongPassword) == F::PasswordRefused);
    CHECK(classify(kNoPassword, true) == F::PasswordRefused);
    CHECK(classify(kHbaRejects) == F::AuthenticationFailed);
    CHECK(classify(kTooMany) == F::TooManyClients);
    CHECK(classify(kStartingUp) == F::StartingUp);
    CHECK(classify(kNoDatabase) == F::ServerError);
    CHECK(classify(kRefused) == F::Refused);
    CHECK(classify(kNoSocket) == F::Refused);
    CHECK(classify_connect_failure("", "connection to server at \"10.0.0.9\", port 5432 failed: timeout expired", false) ==
          F::Unreachable);
    CHECK(classify_connect_failure("", "could not translate host name \"nohost\" to address: Name or service not known",
                                   false) == F::Unreachable);
    CHECK(classify_connect_failure("", "SSL error: certificate verify failed", false) == F::Other);
}

TEST_CASE("57P03 is told apart by its message, a localized one is not accepting", "[db]") {
    using F = ConnectFailure;
    CHECK(classify_connect_failure("57P03", "FATAL:  the database system is shutting down", false) == F::ShuttingDown);
    CHECK(classify_connect_failure("57P03", "FATAL:  the database system is in recovery mode", false) ==
          F::CrashRecovery);
    CHECK(classify_connect_failure("57P03", "FATAL:  the database system is not yet accepting connections", false) ==
          F::StartingUp);
    CHECK(classify_connect_failure("57P03", "FATAL:  the database system is not accepting connections", false) ==
          F::NotAccepting);
    CHECK(classify_connect_failure("57P03", "FATAL:  das Datenbanksystem startet", false) == F::NotAccepting);
    CHECK(classify_connect_failure("57P01", "", false) == F::ShuttingDown);
    CHECK(classify_connect_failure("57P02", "", false) == F::CrashRecovery);
}

TEST_CASE("without a SQLSTATE, the server's English messages still count", "[db]") {
    using F = ConnectFailure;
    CHECK(classify_connect_failure("", "FATAL:  password authentication failed for user \"x\"", false) ==
          F::PasswordRefused);
    CHECK(classify_connect_failure("", "FATAL:  sorry, too many clients already", false) == F::TooManyClients);
    CHECK(classify_connect_failure("", "FATAL:  remaining connection slots are reserved for superusers", false) ==
          F::TooManyClients);
    CHECK(classify_connect_failure("", "FATAL:  the database system is starting up", false) == F::StartingUp);
    CHECK(classify_connect_failure("", "FATAL:  no pg_hba.conf entry for host", false) == F::AuthenticationFailed);
}

TEST_CASE("a server that answered is alive; refused and unreachable are not", "[db]") {
    using F = ConnectFailure;
    for (F f : {F::PasswordRefused, F::AuthenticationFailed, F::TooManyClients, F::StartingUp, F::ShuttingDown,
                F::CrashRecovery, F::NotAccepting, F::ServerError})
        CHECK(server_alive(f));
    for (F f : {F::Refused, F::Unreachable, F::Other}) CHECK_FALSE(server_alive(f));
    CHECK(describe(F::PasswordRefused) == "password refused");
    CHECK(connect_failure_name(F::TooManyClients) == "too_many_clients");
}

TEST_CASE("a refused password keeps exit code 9, every other failure 6", "[db]") {
    CHECK(ConnectionError(ConnectFailure::PasswordRefused, "x").code() == ExitCode::BadPassword);
    CHECK(ConnectionError(ConnectFailure::AuthenticationFailed, "x").code() == ExitCode::DbConnection);
    CHECK(ConnectionError(ConnectFailure::TooManyClients, "x").server_alive());
    CHECK_FALSE(ConnectionError(ConnectFailure::Refused, "x").server_alive());
}

TEST_CASE("connecting to nothing fails as refused, to a silent listener as unreachable", "[db]") {
    // A socket directory that does not exist: nothing listens there.
    try {
        Connection::open("host=/nonexistent/pgrm-test port=5");
        FAIL("connected");
    } catch (const ConnectionError& e) {
        CHECK(e.failure() == ConnectFailure::Refused);
        CHECK(e.code() == ExitCode::DbConnection);
        CHECK_FALSE(e.server_alive());
    }
    // A listener that never answers, like a frozen server: the deadline ends the attempt.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    std::string port = std::to_string(ntohs(addr.sin_port));
    try {
        Connection::open("host=127.0.0.1 port=" + port, ConnectOptions{.deadline = std::chrono::milliseconds(200)});
        FAIL("connected");
    } catch (const ConnectionError& e) {
        CHECK(e.failure() == ConnectFailure::Unreachable);
    }
    ::close(fd);
}
