#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/config.hpp"
#include "core/notification.hpp"
#include "core/timeouts.hpp"

// repmgr.conf(5) against the tables it documents (the settings table in core/config,
// the named timeouts in core/timeouts), both ways: every row has its entry, with the same
// type and default or value, and every entry has its row, in the same order. The same for
// the events of repmgr(1) and repmgrd(8) (core/notification).

namespace {

std::string read_page(const std::string& name) {
    std::ifstream in(std::string(PGRM_SOURCE_DIR) + "/man/" + name);
    REQUIRE(in);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// A request line's arguments: words, or "quoted strings".
std::vector<std::string> arguments(const std::string& line) {
    std::vector<std::string> args;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        if (i == line.size()) break;
        std::string arg;
        if (line[i] == '"') {
            for (++i; i < line.size() && line[i] != '"'; ++i) arg += line[i];
            ++i;
        } else {
            for (; i < line.size() && line[i] != ' '; ++i) arg += line[i];
        }
        args.push_back(arg);
    }
    return args;
}

// A line as it reads once rendered: font requests joined as troff joins them (.B and .I
// with spaces, the alternating ones without), font escapes dropped.
std::string rendered(const std::string& line) {
    std::string text = line;
    if (!line.empty() && line[0] == '.') {
        const std::size_t space = std::min(line.find(' '), line.size());
        const bool alternating = space == 3;  // .BR, .RB, .BI, .IB, .IR, .RI
        text.clear();
        for (const auto& a : arguments(line.substr(space)))
            text += (text.empty() || alternating ? "" : " ") + a;
    }
    static const std::vector<std::pair<std::regex, std::string>> escapes = {
        {std::regex(R"(\\f[BIRP])"), ""}, {std::regex(R"(\\-)"), "-"},
        {std::regex(R"(\\\(dq)"), "\""}, {std::regex(R"(\\ )"), " "}};
    for (const auto& [re, with] : escapes) text = std::regex_replace(text, re, with);
    return text;
}

// The rendered first line of each .TP entry of a section (up to the next .SH).
std::vector<std::string> entries(const std::string& page, const std::string& section) {
    std::istringstream in(page);
    std::vector<std::string> out;
    std::string line;
    bool inside = false, next_is_entry = false;
    while (std::getline(in, line)) {
        if (line.starts_with(".SH ")) inside = line == ".SH " + section;
        if (!inside) continue;
        if (next_is_entry) out.push_back(rendered(line));
        next_is_entry = line == ".TP";
    }
    return out;
}

}  // namespace

TEST_CASE("the man page renders requests as troff does", "[man]") {
    CHECK(rendered(R"(.BR node " (integer, required; alias " node_id ))") ==
          "node (integer, required; alias node_id)");
    CHECK(rendered(R"(.B "a b" c)") == "a b c");
    CHECK(rendered(R"(\fBnode\fR \-\- x)") == "node -- x");
}

TEST_CASE("repmgr.conf(5) SETTINGS is the settings table", "[man]") {
    const auto listed = entries(read_page("repmgr.conf.5"), "SETTINGS");
    const auto& table = pgrm::settings_table();
    static const std::regex entry(R"(^(\w+) \((\w+)(?:, (required|no default|default (\S+)))(?:; alias (.+))?\)$)");
    std::vector<std::string> names;
    for (std::size_t i = 0; i < listed.size(); ++i) {
        INFO("repmgr.conf(5): " << listed[i]);
        std::smatch m;
        REQUIRE(std::regex_match(listed[i], m, entry));
        names.push_back(m[1]);
        auto row = std::find_if(table.begin(), table.end(), [&](const auto& s) { return s.name == m[1]; });
        REQUIRE(row != table.end());
        CHECK(row->type == m[2].str());
        CHECK(row->required == (m[3] == "required"));
        CHECK(row->default_value == m[4].str());
        CHECK((m[3] == "no default") == (!row->required && row->default_value.empty()));
        std::string aliases;
        for (const auto& a : row->aliases) aliases += (aliases.empty() ? "" : ", ") + a;
        CHECK(aliases == m[5].str());
    }
    std::vector<std::string> table_names;
    for (const auto& s : table) table_names.push_back(s.name);
    CHECK(names == table_names);  // every setting, once, in the table's order
}

TEST_CASE("the settings table's defaults are the ones Config starts with", "[man]") {
    for (const auto& s : pgrm::settings_table()) {
        if (s.default_value.empty() || s.default_value.find('<') != std::string::npos) continue;  // set by the loader
        INFO(s.name << " = " << s.default_value);
        pgrm::Config c;
        s.apply(c, s.default_value);
        CHECK(c == pgrm::Config{});
    }
}

TEST_CASE("repmgr.conf(5) TIMEOUTS is the list of named timeouts", "[man]") {
    const auto listed = entries(read_page("repmgr.conf.5"), "TIMEOUTS");
    static const std::regex entry(R"(^(\w+) \((.+)\)$)");
    std::vector<pgrm::timeouts::Documented> from_page;
    for (const auto& e : listed) {
        INFO("repmgr.conf(5): " << e);
        std::smatch m;
        REQUIRE(std::regex_match(e, m, entry));
        from_page.push_back({m[1], m[2]});
    }
    const auto& documented = pgrm::timeouts::documented();
    REQUIRE(from_page.size() == documented.size());
    for (std::size_t i = 0; i < documented.size(); ++i) {
        CHECK(from_page[i].name == documented[i].name);
        CHECK(from_page[i].value == documented[i].value);
    }
}

TEST_CASE("durations are written as repmgr.conf(5) writes them", "[man]") {
    using namespace std::chrono_literals;
    CHECK(pgrm::timeouts::format(5000ms) == "5 s");
    CHECK(pgrm::timeouts::format(250ms) == "250 ms");
    CHECK(pgrm::timeouts::format(5min) == "5 min");
    CHECK(pgrm::timeouts::format(90s) == "90 s");
    CHECK(pgrm::timeouts::format(120s) == "120 s");
    CHECK(pgrm::timeouts::format(1500ms) == "1500 ms");
    CHECK(pgrm::timeouts::format(1h) == "1 h");
}

TEST_CASE("repmgr(1) and repmgrd(8) EVENTS list every event, the commands' then the daemon's", "[man]") {
    auto listed = entries(read_page("repmgr.1"), "EVENTS");
    for (const auto& e : entries(read_page("repmgrd.8"), "EVENTS")) listed.push_back(e);
    CHECK(listed == pgrm::event_names());
}
