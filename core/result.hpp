#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/exit_code.hpp"

namespace pgrm {

// A table for humans; in JSON the same rows appear as objects keyed by column.
struct Table {
    std::vector<std::string> columns;
    std::vector<std::vector<std::string>> rows;
};

// What a command returns. The renderers below turn it into text or into one JSON
// document; commands never print. The exit code may be non-zero without an error
// (a deferred failure that still produced output).
struct Result {
    ExitCode exit_code = ExitCode::Success;
    std::string summary;                                  // one line for humans
    nlohmann::json data = nlohmann::json::object();       // the machine-readable result
    std::optional<Table> table;                           // shown as aligned text
    std::vector<std::string> lines;                       // further human-only lines
};

// Text: the table (if any), the lines, then the summary; each on stdout.
void render_text(const Result& result, std::ostream& out);

// JSON: {"command":…, "ok":…, "exit_code":…, "exit_name":…, "summary":…, "data":…,
// "warnings":[…]}; a table is rendered into data["rows"] unless data has its own.
void render_json(const std::string& command, const Result& result,
                 const std::vector<std::string>& warnings, std::ostream& out);

// {"error":{"code":6,"name":"ERR_DB_CON","message":…,"detail":…,"hint":…,"sqlstate":…}}
void render_error_json(const std::string& command, const Error& error,
                       const std::vector<std::string>& warnings, std::ostream& out);

// The document as text, indented. Bytes that are not UTF-8 (an argument, a path, a
// value from a server in another encoding) become U+FFFD: the output stays one valid
// document rather than aborting.
std::string dump_json(const nlohmann::json& doc);

// text with its control characters written as \n, \r, \t or \xNN: a value from elsewhere
// (a node's name in the metadata) must not forge rows or lines of text output.
std::string escape_control(std::string_view text);

// Aligned columns, psql style, for text output; control characters in cells escaped.
std::string format_table(const Table& table);

}  // namespace pgrm
