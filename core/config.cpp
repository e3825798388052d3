#include "core/config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

// toml++ states its parser's expectations as assertions that a typo can break ("[=" in
// a file): with assert() they abort the program, and under NDEBUG they may become
// compiler assumptions. As no-ops the parser goes on to its own error ("expected bare
// key..."), whatever the build defines.
#pragma push_macro("NDEBUG")
#undef NDEBUG
#define TOML_ASSERT(expr) static_assert(true)
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>
#pragma pop_macro("NDEBUG")

#include "core/conninfo.hpp"
#include "core/error.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/notification.hpp"

namespace pgrm {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

int parse_int(const std::string& raw, int min) {
    long long v = 0;
    const char* end = raw.data() + raw.size();
    auto [p, ec] = std::from_chars(raw.data(), end, v);
    if (raw.empty() || ec != std::errc() || p != end || v < min || v > INT_MAX)
        throw std::invalid_argument("invalid value \"" + raw + "\": must be an integer from " +
                                    std::to_string(min) + " to " + std::to_string(INT_MAX));
    return static_cast<int>(v);
}

// PostgreSQL's spellings of a boolean (the TOML reader passes true and false).
bool parse_bool(const std::string& raw) {
    const std::string v = lower(raw);
    if (v == "on" || v == "true" || v == "yes" || v == "1") return true;
    if (v == "off" || v == "false" || v == "no" || v == "0") return false;
    throw std::invalid_argument("invalid value \"" + raw + "\": must be on or off (true or false)");
}

// A command setting must split into argv now, not fail when repmgrd needs it.
std::string checked_command(const std::string& raw) {
    try {
        split_command(raw);
    } catch (const Error& e) {
        throw std::invalid_argument(e.what());
    }
    return raw;
}

void apply_event_notification_command(Config& c, const std::string& raw) {
    try {
        parse_notification_command(raw);
    } catch (const Error& e) {
        throw std::invalid_argument(e.what());
    }
    c.event_notification_command = raw;
}

void apply_event_notifications(Config& c, const std::string& raw) {
    try {
        c.event_notifications = parse_event_list(raw);
    } catch (const Error& e) {
        throw std::invalid_argument(e.what());
    }
}

// The cluster names the schema repmgr_<cluster>: other characters would need quoting,
// and PostgreSQL truncates identifiers beyond 63 bytes.
void apply_cluster(Config& c, const std::string& raw) {
    constexpr std::size_t max_len = 63 - std::string_view("repmgr_").size();
    if (raw.empty()) throw std::invalid_argument("must not be empty");
    for (char ch : raw)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_')
            throw std::invalid_argument("invalid value \"" + raw +
                                        "\": must contain only letters, digits and underscores");
    if (raw.size() > max_len)
        throw std::invalid_argument("must be at most " + std::to_string(max_len) +
                                    " characters long");
    c.cluster = raw;
}

void apply_conninfo(Config& c, const std::string& raw) {
    // Other nodes connect with what this node registers, so "all defaults" is no use.
    if (raw.empty()) throw std::invalid_argument("must not be empty");
    try {
        parse_conninfo(raw);
    } catch (const Error& e) {
        // The caller already names the setting, so libpq's reason alone is enough.
        std::string_view why = e.what();
        constexpr std::string_view prefix = "invalid conninfo: ";
        if (why.starts_with(prefix)) why.remove_prefix(prefix.size());
        throw std::invalid_argument(std::string(why));
    }
    c.conninfo = raw;
}

void apply_log_level(Config& c, const std::string& raw) {
    auto level = log::parse_level(raw);
    if (!level)
        throw std::invalid_argument("invalid value \"" + raw +
                                    "\": must be one of debug, info, notice, warning, error");
    c.log_level = lower(log::level_name(*level));
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        char32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (b & 0x3F);
        }
        constexpr char32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

// Stored in the metadata, whose text is UTF-8 on the wire (client_encoding).
void apply_node_name(Config& c, const std::string& raw) {
    if (!valid_utf8(raw)) throw std::invalid_argument("must be valid UTF-8");
    c.node_name = raw;
}

void apply_etcd_endpoints(Config& c, const std::string& raw) {
    std::vector<std::string> list;
    std::size_t at = 0;
    while (at <= raw.size() && !raw.empty()) {
        std::size_t comma = std::min(raw.find(',', at), raw.size());
        std::string one = raw.substr(at, comma - at);
        while (!one.empty() && is_space(one.front())) one.erase(0, 1);
        while (!one.empty() && is_space(one.back())) one.pop_back();
        parse_etcd_endpoint(one);
        list.push_back(one);
        at = comma + 1;
    }
    c.etcd_endpoints = list;
}

void apply_etcd_prefix(Config& c, const std::string& raw) {
    if (!raw.starts_with("/") || !raw.ends_with("/"))
        throw std::invalid_argument("invalid value \"" + raw + "\": must start and end with \"/\"");
    if (!valid_utf8(raw)) throw std::invalid_argument("must be valid UTF-8");
    c.etcd_prefix = raw;
}

const SettingSpec* find_setting(const std::string& key) {
    const std::string k = lower(key);
    for (const auto& spec : settings_table()) {
        if (spec.name == k) return &spec;
        for (const auto& alias : spec.aliases)
            if (alias == k) return &spec;
    }
    return nullptr;
}

constexpr long long kFailoverWindowMax = 86400;  // seconds

[[noreturn]] void fail(const std::string& message) {
    throw Error(ExitCode::BadConfig, message);
}

std::string where(const std::string& path, std::size_t line) {
    return path + ":" + std::to_string(line) + ": ";
}

// Applies settings in file order and remembers which were given.
class Collector {
public:
    Collector(Config& config, const std::string& path) : config_(config), path_(path) {}

    void set(const std::string& key, const std::string& value, std::size_t line) {
        const SettingSpec* spec = find_setting(key);
        if (!spec) {
            log::warning(where(path_, line) + "unknown setting \"" + key + "\" ignored");
            return;
        }
        try {
            spec->apply(config_, value);
        } catch (const std::invalid_argument& e) {
            fail(where(path_, line) + key + ": " + e.what());
        }
        // Allowed, as in repmgr 1.0, but a second value is usually a mistake.
        if (auto first = given_.find(spec); first != given_.end())
            log::warning(where(path_, line) + "\"" + key + "\" sets \"" + spec->name +
                         "\" again (first set on line " + std::to_string(first->second) +
                         "); this value wins");
        else
            given_.emplace(spec, line);
    }

    void finish() {
        for (const auto& spec : settings_table())
            if (spec.required && !given_.contains(&spec))
                fail(path_ + ": missing required setting \"" + spec.name + "\"");
        if (config_.node_name.empty()) config_.node_name = "node" + std::to_string(config_.node);
        // repmgrd's waits follow from these (core/timeouts): at most a day, far from
        // overflowing, or a failover could not be timed.
        long long window = static_cast<long long>(config_.reconnect_attempts) * config_.reconnect_interval +
                           config_.monitor_interval_secs;
        if (window > kFailoverWindowMax)
            fail(path_ + ": reconnect_attempts * reconnect_interval + monitor_interval_secs is " +
                 std::to_string(window) + " s, more than " + std::to_string(kFailoverWindowMax) +
                 " s (a day): repmgrd could not time a failover");
        if (config_.etcd_prefix.empty()) config_.etcd_prefix = "/pgrm/" + config_.cluster + "/";
        check_etcd();
        config_.path = path_;
    }

private:
    // Settings that only mean something together, and a lease a primary can renew.
    void check_etcd() {
        const Config& c = config_;
        auto needs = [&](const std::string& a, const std::string& b) {
            fail(path_ + ": \"" + a + "\" is set but \"" + b + "\" is not");
        };
        if (c.etcd_cert.empty() != c.etcd_key.empty())
            c.etcd_cert.empty() ? needs("etcd_key", "etcd_cert") : needs("etcd_cert", "etcd_key");
        if (!c.etcd_password.empty() && c.etcd_user.empty()) needs("etcd_password", "etcd_user");
        if (c.etcd_failover_on_refusal && c.dcs != "etcd")
            fail(path_ + ": etcd_failover_on_refusal is on but dcs is not etcd");
        if (c.dcs != "etcd") return;
        if (c.etcd_endpoints.empty()) fail(path_ + ": dcs = etcd needs \"etcd_endpoints\"");
        const bool tls_files = !c.etcd_cacert.empty() || !c.etcd_cert.empty();
        const bool any_https = std::any_of(c.etcd_endpoints.begin(), c.etcd_endpoints.end(),
                                           [](const std::string& e) { return parse_etcd_endpoint(e).tls; });
        if (tls_files && !any_https)
            fail(path_ + ": etcd_cacert and etcd_cert are for https endpoints, and every one of etcd_endpoints is http");
    }

    Config& config_;
    const std::string& path_;
    std::map<const SettingSpec*, std::size_t> given_;  // the line each was first set on
};

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Reads a quoted value starting at the opening quote; nullopt when unterminated. A
// backslash escapes the next character in both styles, and '' is a quote inside single
// quotes: postgresql.conf's rules, and repmgr 5 accepts \' as well.
std::optional<std::string> read_quoted(std::string_view line, std::size_t& i) {
    const char quote = line[i++];
    std::string out;
    while (i < line.size()) {
        char c = line[i++];
        if (c == '\\' && i < line.size()) {
            out += line[i++];
        } else if (c == quote) {
            if (quote == '\'' && i < line.size() && line[i] == '\'') {
                out += '\'';
                ++i;
            } else {
                return out;
            }
        } else {
            out += c;
        }
    }
    return std::nullopt;
}

void parse_line(std::string_view line, std::size_t lineno, Collector& out,
                const std::string& path) {
    auto syntax = [&](const std::string& reason) {
        fail(where(path, lineno) + "syntax error: " + reason);
    };
    std::size_t i = 0;
    auto skip_blanks = [&] { while (i < line.size() && is_blank(line[i])) ++i; };

    skip_blanks();
    if (i == line.size() || line[i] == '#') return;

    const std::size_t key_start = i;
    while (i < line.size() && !is_blank(line[i]) && line[i] != '=' && line[i] != '#') ++i;
    const std::string key(line.substr(key_start, i - key_start));
    skip_blanks();
    if (key.empty()) syntax("missing setting name before \"=\"");
    if (i == line.size() || line[i] != '=') syntax("expected \"=\" after \"" + key + "\"");
    ++i;
    skip_blanks();

    std::string value;
    if (i < line.size() && (line[i] == '\'' || line[i] == '"')) {
        auto quoted = read_quoted(line, i);
        if (!quoted) syntax("unterminated quoted value");
        value = std::move(*quoted);
    } else {
        // Unquoted: the rest of the line up to a comment, as repmgr 1.0 read it, so
        // conninfo=host=a user=b still loads.
        const std::size_t start = i;
        while (i < line.size() && line[i] != '#') ++i;
        value = line.substr(start, i - start);
        while (!value.empty() && is_blank(value.back())) value.pop_back();
    }
    skip_blanks();
    if (i < line.size() && line[i] != '#') {
        std::string rest(line.substr(i));
        while (!rest.empty() && is_blank(rest.back())) rest.pop_back();
        syntax("unexpected \"" + rest + "\" after the value of \"" + key +
               "\"; quote values that contain spaces");
    }
    out.set(key, value, lineno);
}

void parse_key_value(std::string_view text, Collector& out, const std::string& path) {
    std::size_t lineno = 0;
    while (!text.empty()) {
        ++lineno;
        const std::size_t nl = text.find('\n');
        parse_line(text.substr(0, nl), lineno, out, path);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    }
}

std::string_view toml_kind(toml::node_type t) {
    switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "an unsupported value";
    }
}

// toml++ 3.3 classifies a non-ASCII character outside strings and comments with tables
// that reach __builtin_unreachable for some (failover=é): undefined behaviour. So such a
// character is refused before toml++ sees the text; the line of the first is returned.
// Relaxed only where toml++ is sure to be in a comment or a string: comment lines, and
// lines "key = value" with a bare ASCII key whose value is a string or a bare ASCII word,
// then an optional comment. After anything else (a table header, an array, a quoted
// key, a stray character) every later byte must be ASCII, so the scanner never needs to
// agree with toml++ on anything harder.
std::optional<std::size_t> non_ascii_outside_strings(std::string_view text) {
    std::size_t i = 0, line = 1;
    bool strict = false;
    if (text.starts_with("\xEF\xBB\xBF")) i = 3;  // a byte-order mark, which toml++ skips
    auto ascii = [&](std::size_t at) { return static_cast<unsigned char>(text[at]) < 0x80; };
    auto eol = [&] { return i >= text.size() || text[i] == '\n'; };
    auto blanks = [&] { while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i; };
    auto to_eol = [&] { while (!eol()) ++i; };
    auto bare = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; };
    auto count = [&](char c) { std::size_t n = 0; while (i + n < text.size() && text[i + n] == c) ++n; return n; };

    while (i < text.size()) {
        if (strict) {
            if (!ascii(i)) return line;
            if (text[i++] == '\n') ++line;
            continue;
        }
        blanks();
        if (eol()) {
            if (i < text.size()) ++i, ++line;
            continue;
        }
        if (text[i] == '#') {
            to_eol();
            continue;
        }
        // key = ...
        while (!eol() && (bare(text[i]) || text[i] == '.' || text[i] == ' ' || text[i] == '\t')) ++i;
        if (eol() || text[i] != '=') {
            strict = true;
            continue;
        }
        ++i;
        blanks();
        if (!eol() && (text[i] == '"' || text[i] == '\'')) {
            const char quote = text[i];
            const bool basic = quote == '"';
            if (count(quote) >= 3) {
                // A multi-line string. toml++ classifies the character after a backslash,
                // and after a line-ending one every character up to the first that is not
                // blank: those must be ASCII.
                i += 3;
                enum { Plain, Escaped, Skipping } state = Plain;
                bool closed = false;
                while (i < text.size() && !closed) {
                    const char c = text[i];
                    const bool blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
                    if (state != Plain && !ascii(i)) return line;
                    if (state == Escaped) {
                        state = blank ? Skipping : Plain;
                    } else if (state == Skipping && !blank) {
                        state = Plain;
                        continue;  // an ASCII character, read again as plain text
                    } else if (state == Plain && basic && c == '\\') {
                        state = Escaped;
                    } else if (state == Plain && c == quote && count(quote) >= 3) {
                        i += std::min<std::size_t>(count(quote), 5);  // up to two belong to the string
                        closed = true;
                        continue;
                    }
                    if (c == '\n') ++line;
                    ++i;
                }
                if (!closed) return std::nullopt;  // toml++ stops at the end, still inside
            } else {
                ++i;
                bool closed = false;
                while (!eol() && !closed) {
                    if (basic && text[i] == '\\') {
                        ++i;
                        if (eol()) break;
                        if (!ascii(i)) return line;
                        ++i;
                    } else {
                        closed = text[i++] == quote;
                    }
                }
                if (!closed) {
                    strict = true;
                    continue;
                }
            }
        } else {
            if (!eol() && (text[i] == '[' || text[i] == '{')) {
                strict = true;
                continue;
            }
            while (!eol() && text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '#') {
                if (!ascii(i)) return line;
                ++i;
            }
        }
        // After the value: blanks, then a comment or the end of the line.
        blanks();
        if (!eol() && text[i] == '#') to_eol();
        if (!eol()) strict = true;
    }
    return std::nullopt;
}

void parse_toml(std::string_view text, Collector& out, const std::string& path) {
    if (auto line = non_ascii_outside_strings(text))
        fail(where(path, *line) + "syntax error: a non-ASCII character outside a quoted string or "
                                  "a comment");
    toml::table doc;
    try {
        doc = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        // toml++ capitalizes ("Error while parsing…"); our messages are lower-case.
        std::string why(e.description());
        if (!why.empty())
            why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
        fail(where(path, e.source().begin.line) + why);
    }

    // The table is ordered by key; going in file order makes a later alias win and the
    // first error reported be the first in the file, as in the key=value format.
    std::vector<std::pair<std::size_t, const toml::key*>> order;
    for (const auto& [k, node] : doc) order.emplace_back(node.source().begin.line, &k);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });

    for (const auto& [line, k] : order) {
        const std::string key(k->str());
        const toml::node& node = *doc.get(k->str());
        std::string value;
        if (auto s = node.value_exact<std::string>())
            value = *s;
        else if (auto n = node.value_exact<int64_t>())
            value = std::to_string(*n);
        else if (auto b = node.value_exact<bool>())
            value = *b ? "true" : "false";
        else
            fail(where(path, line) + key + ": must be a string, an integer or a boolean, not " +
                 std::string(toml_kind(node.type())));
        out.set(key, value, line);
    }
}

bool looks_like_toml(std::string_view text, const std::string& path) {
    if (path.ends_with(".toml")) return true;
    while (!text.empty()) {
        const std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        const std::size_t start = line.find_first_not_of(" \t\r");
        if (start != std::string_view::npos && line[start] != '#') return line[start] == '[';
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    }
    return false;
}

}  // namespace

const std::vector<SettingSpec>& settings_table() {
    static const std::vector<SettingSpec> table = {
        {"cluster", {}, "identifier", "", true,
         "name of the cluster; its metadata lives in the schema repmgr_<cluster>",
         apply_cluster},
        {"node", {"node_id"}, "integer", "", true,
         "this node's id, unique in the cluster and greater than zero",
         [](Config& c, const std::string& raw) { c.node = parse_int(raw, 1); }},
        {"conninfo", {}, "conninfo", "", true,
         "how to reach this node's server, as libpq accepts it (keepalives… included)",
         apply_conninfo},
        {"node_name", {}, "string", "node<id>", false,
         "a readable name for this node",
         apply_node_name},
        {"data_directory", {}, "string", "", false,
         "this node's data directory (PGDATA)",
         [](Config& c, const std::string& raw) { c.data_directory = raw; }},
        {"pg_bindir", {}, "string", "", false,
         "directory of pg_ctl, pg_basebackup and the other PostgreSQL programs; "
         "detected when empty",
         [](Config& c, const std::string& raw) { c.pg_bindir = raw; }},
        {"priority", {}, "integer", "100", false,
         "failover preference, higher first; 0 means never promote this node",
         [](Config& c, const std::string& raw) { c.priority = parse_int(raw, 0); }},
        {"log_level", {}, "string", "notice", false,
         "least severe messages logged: debug, info, notice, warning or error",
         apply_log_level},
        {"log_file", {}, "string", "", false,
         "file the log is appended to; stderr when empty",
         [](Config& c, const std::string& raw) { c.log_file = raw; }},
        {"ssh_options", {}, "string", "", false,
         "options added to ssh when rsync copies from another host (e.g. -p 2222 -i ~/.ssh/repl); "
         "split on spaces and quotes, never by a shell",
         [](Config& c, const std::string& raw) { c.ssh_options = checked_command(raw); }},
        {"service_start_command", {}, "string", "", false,
         "starts this node's server, e.g. pg_ctlcluster 15 main start or "
         "systemctl start postgresql@15-main; run as pgrm's own user, split on spaces and quotes, "
         "never by a shell; empty: pg_ctl, or pg_ctlcluster for a Debian cluster",
         [](Config& c, const std::string& raw) { c.service_start_command = checked_command(raw); }},
        {"service_stop_command", {}, "string", "", false,
         "stops this node's server (a fast shutdown); an immediate shutdown signals the postmaster "
         "with pg_ctl",
         [](Config& c, const std::string& raw) { c.service_stop_command = checked_command(raw); }},
        {"service_restart_command", {}, "string", "", false,
         "restarts this node's server",
         [](Config& c, const std::string& raw) { c.service_restart_command = checked_command(raw); }},
        {"service_reload_command", {}, "string", "", false,
         "makes this node's server reload its configuration (standby follow); "
         "empty: pg_reload_conf()",
         [](Config& c, const std::string& raw) { c.service_reload_command = checked_command(raw); }},
        {"config_directory", {}, "string", "", false,
         "directory of this node's postgresql.conf when it is not the data directory; "
         "found by itself for a Debian cluster (/etc/postgresql/<version>/<name>)",
         [](Config& c, const std::string& raw) { c.config_directory = raw; }},
        {"failover", {}, "string", "manual", false,
         "automatic: repmgrd promotes or follows when the primary is lost; manual: it only logs",
         [](Config& c, const std::string& raw) {
             if (raw != "automatic" && raw != "manual")
                 throw std::invalid_argument("invalid value \"" + raw + "\": must be automatic or manual");
             c.failover = raw;
         }},
        {"monitor_interval_secs", {}, "integer", "2", false,
         "seconds between two monitoring passes of repmgrd",
         [](Config& c, const std::string& raw) { c.monitor_interval_secs = parse_int(raw, 1); }},
        {"reconnect_attempts", {}, "integer", "6", false,
         "checks of a silent primary before repmgrd declares it lost",
         [](Config& c, const std::string& raw) { c.reconnect_attempts = parse_int(raw, 1); }},
        {"reconnect_interval", {}, "integer", "10", false,
         "seconds between those checks",
         [](Config& c, const std::string& raw) { c.reconnect_interval = parse_int(raw, 1); }},
        {"monitoring_history_days", {}, "integer", "7", false,
         "days of repl_monitor rows kept; older rows are deleted",
         [](Config& c, const std::string& raw) { c.monitoring_history_days = parse_int(raw, 1); }},
        {"fence", {}, "string", "readonly", false,
         "what a primary cut off from a majority does: readonly (default) or shutdown",
         [](Config& c, const std::string& raw) {
             if (raw != "readonly" && raw != "shutdown")
                 throw std::invalid_argument("invalid value \"" + raw + "\": must be readonly or shutdown");
             c.fence = raw;
         }},
        {"shutdown_check_timeout", {}, "integer", "60", false,
         "seconds a switchover waits for the old primary's clean shutdown before it aborts",
         [](Config& c, const std::string& raw) { c.shutdown_check_timeout = parse_int(raw, 1); }},
        {"promote_command", {}, "string", "", false,
         "program (with arguments, no shell) run instead of the built-in promotion",
         [](Config& c, const std::string& raw) { c.promote_command = checked_command(raw); }},
        {"follow_command", {}, "string", "", false,
         "program run instead of the built-in follow",
         [](Config& c, const std::string& raw) { c.follow_command = checked_command(raw); }},
        {"fence_command", {}, "string", "", false,
         "program run when a primary fences itself",
         [](Config& c, const std::string& raw) { c.fence_command = checked_command(raw); }},
        {"http_listen", {}, "address", "", false,
         "host:port (or [IPv6 address]:port) where repmgrd answers health checks and metrics "
         "over HTTP; empty: no endpoint",
         [](Config& c, const std::string& raw) {
             if (!raw.empty()) parse_listen_address(raw);
             c.http_listen = raw;
         }},
        {"event_notification_command", {}, "string", "", false,
         "program (with arguments and placeholders %n %e %s %t %d %p, no shell) run for each event",
         apply_event_notification_command},
        {"event_notifications", {}, "list", "", false,
         "events, separated by commas, that event_notification_command runs for; every one when empty",
         apply_event_notifications},
        {"dcs", {}, "string", "none", false,
         "a distributed configuration store deciding who may take writes: none, or etcd "
         "(a leader key under a lease)",
         [](Config& c, const std::string& raw) {
             if (raw != "none" && raw != "etcd")
                 throw std::invalid_argument("invalid value \"" + raw + "\": must be none or etcd");
             c.dcs = raw;
         }},
        {"etcd_endpoints", {}, "list", "", false,
         "etcd's client URLs, separated by commas (http://host:port or https://host:port), tried in turn",
         apply_etcd_endpoints},
        {"etcd_prefix", {}, "string", "/pgrm/<cluster>/", false,
         "where this cluster's keys live in etcd",
         apply_etcd_prefix},
        {"etcd_lease_ttl", {}, "integer", "", false,
         "seconds the leader key outlives its holder's last renewal; derived from the daemon's timers when unset",
         [](Config& c, const std::string& raw) { c.etcd_lease_ttl = parse_int(raw, 2); }},
        {"etcd_cacert", {}, "string", "", false,
         "file of the CA certificates that etcd's server certificates are checked against (https)",
         [](Config& c, const std::string& raw) { c.etcd_cacert = raw; }},
        {"etcd_cert", {}, "string", "", false,
         "file of this client's certificate for etcd (https), with etcd_key",
         [](Config& c, const std::string& raw) { c.etcd_cert = raw; }},
        {"etcd_key", {}, "string", "", false,
         "file of that certificate's private key",
         [](Config& c, const std::string& raw) { c.etcd_key = raw; }},
        {"etcd_user", {}, "string", "", false,
         "etcd user to authenticate as; none when empty",
         [](Config& c, const std::string& raw) { c.etcd_user = raw; }},
        {"etcd_password", {}, "string", "", false,
         "that user's password; never logged nor shown",
         [](Config& c, const std::string& raw) { c.etcd_password = raw; }},
        {"etcd_failover_on_refusal", {}, "boolean", "false", false,
         "a standby may end a lost primary's lease when its host refuses connections and its repmgrd is "
         "silent in etcd, instead of waiting for the lease (a firewall that rejects looks the same)",
         [](Config& c, const std::string& raw) { c.etcd_failover_on_refusal = parse_bool(raw); }},
    };
    return table;
}

ListenAddress parse_listen_address(std::string_view raw) {
    auto bad = [&](const std::string& why) {
        return std::invalid_argument("invalid value \"" + std::string(raw) + "\": " + why);
    };
    ListenAddress a;
    std::string_view port;
    if (raw.starts_with("[")) {
        std::size_t close = raw.find(']');
        if (close == std::string_view::npos || close + 1 >= raw.size() || raw[close + 1] != ':')
            throw bad("must be [address]:port");
        a.host = raw.substr(1, close - 1);
        port = raw.substr(close + 2);
        if (a.host.find(':') == std::string::npos) throw bad("brackets are for an IPv6 address");
    } else {
        std::size_t colon = raw.rfind(':');
        if (colon == std::string_view::npos) throw bad("must be host:port");
        a.host = raw.substr(0, colon);
        port = raw.substr(colon + 1);
        if (a.host.find(':') != std::string::npos) throw bad("write an IPv6 address in brackets: [address]:port");
    }
    if (a.host.empty()) throw bad("the host is missing (0.0.0.0 or [::] listens on every address)");
    for (char ch : a.host)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != ':' && ch != '_' &&
            ch != '%')
            throw bad("the host must be a name or an address");
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535)
        throw bad("the port must be a number from 1 to 65535");
    a.port = p;
    return a;
}

EtcdEndpoint parse_etcd_endpoint(std::string_view raw) {
    auto bad = [&](const std::string& why) {
        return std::invalid_argument("invalid endpoint \"" + std::string(raw) + "\": " + why);
    };
    if (raw.empty()) throw bad("must be http://host:port or https://host:port");
    EtcdEndpoint e;
    std::string_view rest = raw;
    if (rest.starts_with("https://")) {
        e.tls = true;
        rest.remove_prefix(8);
    } else if (rest.starts_with("http://")) {
        rest.remove_prefix(7);
    } else {
        throw bad("must be http://host:port or https://host:port");
    }
    if (rest.ends_with("/")) rest.remove_suffix(1);  // as etcd prints its client URLs, sometimes
    try {
        ListenAddress a = parse_listen_address(rest);
        e.host = a.host;
        e.port = a.port;
    } catch (const std::invalid_argument&) {
        throw bad("must be http://host:port or https://host:port (an IPv6 address in brackets)");
    }
    return e;
}

Config parse_config(std::string_view text, const std::string& path) {
    // Every reader would stop at it (libpq, the C strings of a conninfo), so the rest of
    // the value would silently vanish.
    if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos)
        fail(where(path, 1 + std::count(text.begin(), text.begin() + nul, '\n')) +
             "syntax error: a NUL byte");
    Config config;
    Collector out(config, path);
    if (looks_like_toml(text, path))
        parse_toml(text, out, path);
    else
        parse_key_value(text, out, path);
    out.finish();
    return config;
}

Config load_config(const std::string& path) {
    // A directory opens and reads as empty, which would end in a puzzling "missing
    // required setting".
    std::error_code ec;
    const bool is_dir = std::filesystem::is_directory(path, ec);
    std::ifstream in;
    if (!is_dir) in.open(path, std::ios::binary);
    if (is_dir || !in)
        fail("could not open configuration file \"" + path +
             "\": " + std::strerror(is_dir ? EISDIR : errno));
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), path);
}

std::optional<std::string> find_config_file(const std::string& explicit_path,
                                            const std::string& binary_dir) {
    namespace fs = std::filesystem;
    if (!explicit_path.empty()) return explicit_path;
    std::vector<fs::path> candidates{"./repmgr.conf"};
    if (!binary_dir.empty()) candidates.push_back(fs::path(binary_dir) / "repmgr.conf");
    candidates.emplace_back("/etc/repmgr.conf");
    for (const auto& p : candidates) {
        std::error_code ec;
        if (fs::is_regular_file(p, ec)) return p.string();
    }
    return std::nullopt;
}

}  // namespace pgrm
