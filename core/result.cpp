#include "core/result.hpp"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <sstream>

#include "core/conninfo.hpp"

namespace pgrm {

std::string escape_control(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (u < 0x20 || u == 0x7F) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", u);
            out += hex;
        } else {
            out += c;
        }
    }
    return out;
}

std::string format_table(const Table& given) {
    Table table{{}, {}};
    for (const auto& c : given.columns) table.columns.push_back(escape_control(c));
    for (const auto& row : given.rows) {
        table.rows.emplace_back();
        for (const auto& cell : row) table.rows.back().push_back(escape_control(cell));
    }
    std::vector<size_t> width(table.columns.size(), 0);
    for (size_t c = 0; c < table.columns.size(); ++c) width[c] = table.columns[c].size();
    for (const auto& row : table.rows)
        for (size_t c = 0; c < row.size() && c < width.size(); ++c)
            width[c] = std::max(width[c], row[c].size());

    std::ostringstream out;
    auto line = [&](const std::vector<std::string>& cells) {
        std::string text;
        for (size_t c = 0; c < width.size(); ++c) {
            std::string cell = c < cells.size() ? cells[c] : "";
            if (c > 0) text += " | ";
            text += cell;
            if (c + 1 < width.size()) text += std::string(width[c] - cell.size(), ' ');
        }
        out << text << '\n';
    };
    line(table.columns);
    std::string rule;
    for (size_t c = 0; c < width.size(); ++c) {
        if (c > 0) rule += "-+-";
        rule += std::string(width[c], '-');
    }
    out << rule << '\n';
    for (const auto& row : table.rows) line(row);
    return out.str();
}

std::string dump_json(const nlohmann::json& doc) {
    return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

void render_text(const Result& result, std::ostream& out) {
    if (result.table) out << format_table(*result.table);
    for (const auto& l : result.lines) out << l << '\n';
    if (!result.summary.empty()) out << result.summary << '\n';
}

static nlohmann::json table_rows(const Table& table) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : table.rows) {
        nlohmann::json obj = nlohmann::json::object();
        for (size_t c = 0; c < table.columns.size() && c < row.size(); ++c)
            obj[table.columns[c]] = row[c];
        rows.push_back(std::move(obj));
    }
    return rows;
}

void render_json(const std::string& command, const Result& result,
                 const std::vector<std::string>& warnings, std::ostream& out) {
    nlohmann::json data = result.data;
    if (result.table && !data.contains("rows")) data["rows"] = table_rows(*result.table);
    nlohmann::json doc = {
        {"command", command},
        {"ok", result.exit_code == ExitCode::Success},
        {"exit_code", static_cast<int>(result.exit_code)},
        {"exit_name", std::string(exit_code_name(result.exit_code))},
        {"summary", result.summary},
        {"data", std::move(data)},
        {"warnings", warnings},
    };
    out << dump_json(doc) << '\n';
}

void render_error_json(const std::string& command, const Error& error,
                       const std::vector<std::string>& warnings, std::ostream& out) {
    nlohmann::json err = {
        {"code", static_cast<int>(error.code())},
        {"name", std::string(exit_code_name(error.code()))},
        {"message", redact_secrets(error.what())},
    };
    if (!error.detail().empty()) err["detail"] = redact_secrets(error.detail());
    if (!error.hint().empty()) err["hint"] = error.hint();
    if (!error.sqlstate().empty()) err["sqlstate"] = error.sqlstate();
    nlohmann::json doc = {{"command", command}, {"ok", false}, {"error", err},
                          {"warnings", warnings}};
    out << dump_json(doc) << '\n';
}

}  // namespace pgrm
