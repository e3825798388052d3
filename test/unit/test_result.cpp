#include <catch2/catch.hpp>

#include <sstream>

#include "core/result.hpp"

using namespace pgrm;

TEST_CASE("text rendering aligns the table and ends with the summary", "[result]") {
    Result r;
    r.table = Table{{"ID", "Name"}, {{"1", "node1"}, {"10", "n"}}};
    r.lines = {"a hint"};
    r.summary = "done";
    std::ostringstream out;
    render_text(r, out);
    CHECK(out.str() ==
          "ID | Name\n"
          "---+------\n"
          "1  | node1\n"
          "10 | n\n"
          "a hint\n"
          "done\n");
}

TEST_CASE("json rendering is one document with the table as rows", "[result]") {
    Result r;
    r.summary = "ok";
    r.data = {{"cluster", "test"}};
    r.table = Table{{"ID", "Name"}, {{"1", "node1"}}};
    std::ostringstream out;
    render_json("cluster show", r, {"careful"}, out);
    auto doc = nlohmann::json::parse(out.str());
    CHECK(doc["command"] == "cluster show");
    CHECK(doc["ok"] == true);
    CHECK(doc["exit_code"] == 0);
    CHECK(doc["exit_name"] == "SUCCESS");
    CHECK(doc["data"]["cluster"] == "test");
    CHECK(doc["data"]["rows"][0]["Name"] == "node1");
    CHECK(doc["warnings"][0] == "careful");
}

TEST_CASE("a deferred failure renders as not ok with its code", "[result]") {
    Result r;
    r.exit_code = ExitCode::NeedsWalDir;
    std::ostringstream out;
    render_json("standby clone", r, {}, out);
    auto doc = nlohmann::json::parse(out.str());
    CHECK(doc["ok"] == false);
    CHECK(doc["exit_code"] == 5);
    CHECK(doc["exit_name"] == "ERR_NEEDS_XLOG");
}

TEST_CASE("errors render as one JSON document with code, name and message", "[result]") {
    Error e(ExitCode::DbConnection, "could not connect to \"host=a\"", "refused", "is it up?");
    std::ostringstream out;
    render_error_json("standby clone", e, {}, out);
    auto doc = nlohmann::json::parse(out.str());
    CHECK(doc["ok"] == false);
    CHECK(doc["error"]["code"] == 6);
    CHECK(doc["error"]["name"] == "ERR_DB_CON");
    CHECK(doc["error"]["message"] == "could not connect to \"host=a\"");
    CHECK(doc["error"]["detail"] == "refused");
    CHECK(doc["error"]["hint"] == "is it up?");
}

TEST_CASE("error JSON never carries a password", "[result]") {
    Error e(ExitCode::BadPassword, "password refused for host=a password=s3cret", "password=s3cret");
    std::ostringstream out;
    render_error_json("x", e, {}, out);
    CHECK(out.str().find("s3cret") == std::string::npos);
}

TEST_CASE("bytes that are not UTF-8 never break the JSON document", "[result]") {
    // nlohmann's dump threw on them (and the caller aborted): an argument "\xff", a path,
    // a value from a LATIN1 database.
    Result r;
    r.summary = "node \"caf\xE9\" registered";
    r.data = {{"name", "caf\xE9"}, {"path", "/tmp/\xFF"}, {"fine", "caf\xC3\xA9"}};
    std::ostringstream out;
    render_json("master register", r, {"warn \xFF"}, out);
    auto doc = nlohmann::json::parse(out.str());
    CHECK(doc["summary"] == "node \"caf\xEF\xBF\xBD\" registered");
    CHECK(doc["data"]["name"] == "caf\xEF\xBF\xBD");
    CHECK(doc["data"]["path"] == "/tmp/\xEF\xBF\xBD");
    CHECK(doc["data"]["fine"] == "caf\xC3\xA9");
    CHECK(doc["warnings"][0] == "warn \xEF\xBF\xBD");

    std::ostringstream err;
    render_error_json("", Error(ExitCode::BadConfig, "unknown command or argument \"\xFF\""), {}, err);
    CHECK(nlohmann::json::parse(err.str())["error"]["message"] ==
          "unknown command or argument \"\xEF\xBF\xBD\"");
}

TEST_CASE("control characters in cells cannot forge rows of the text table", "[result]") {
    Result r;
    r.table = Table{{"ID", "Name"}, {{"1", "a\n2  | forged"}, {"3", "t\tx\x1b[2J\x7f"}}};
    std::ostringstream out;
    render_text(r, out);
    CHECK(out.str() ==
          "ID | Name\n"
          "---+----------------\n"
          "1  | a\\n2  | forged\n"
          "3  | t\\tx\\x1b[2J\\x7f\n");
    CHECK(escape_control("caf\xC3\xA9 \\n") == "caf\xC3\xA9 \\n");  // UTF-8 and a backslash stay
}
