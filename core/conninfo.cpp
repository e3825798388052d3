#include "core/conninfo.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>

#include "core/error.hpp"

namespace pgrm {

std::optional<std::string> Conninfo::get(std::string_view key) const {
    for (const auto& [k, v] : params)
        if (k == key) return v;
    return std::nullopt;
}

void Conninfo::set(const std::string& key, const std::string& value) {
    for (auto& [k, v] : params)
        if (k == key) { v = value; return; }
    params.emplace_back(key, value);
}

void Conninfo::set_default(const std::string& key, const std::string& value) {
    if (!get(key)) params.emplace_back(key, value);
}

void Conninfo::erase(std::string_view key) {
    std::erase_if(params, [&](const auto& p) { return p.first == key; });
}

namespace {

// What libpq's conninfo parser takes for a blank: isspace() in the C locale.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

std::string quote_conninfo_value(std::string_view value) {
    bool plain = !value.empty();
    for (char c : value)
        if (is_space(c) || c == '\'' || c == '\\' || c == '=') plain = false;
    if (plain) return std::string(value);
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

static std::string join(const std::vector<std::pair<std::string, std::string>>& params,
                        bool hide_password) {
    std::string out;
    for (const auto& [k, v] : params) {
        if (!out.empty()) out += ' ';
        out += k + "=" + (hide_password && is_secret_keyword(k) ? "********" : quote_conninfo_value(v));
    }
    return out;
}

std::string Conninfo::str() const { return join(params, false); }
std::string Conninfo::redacted() const { return join(params, true); }

bool is_secret_keyword(std::string_view key) { return key == "password" || key == "sslpassword"; }

bool Conninfo::has_secrets() const {
    return std::any_of(params.begin(), params.end(), [](const auto& p) { return is_secret_keyword(p.first); });
}

Conninfo Conninfo::without_secrets() const {
    Conninfo out = *this;
    std::erase_if(out.params, [](const auto& p) { return is_secret_keyword(p.first); });
    return out;
}

Conninfo parse_conninfo(const std::string& text) {
    char* errmsg = nullptr;
    PQconninfoOption* opts = PQconninfoParse(text.c_str(), &errmsg);
    if (!opts) {
        std::string why = errmsg ? errmsg : "out of memory";
        PQfreemem(errmsg);
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        throw Error(ExitCode::BadConfig, "invalid conninfo: " + redact_secrets(why));
    }
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> guard(opts, PQconninfoFree);
    Conninfo result;
    for (PQconninfoOption* o = opts; o->keyword; ++o)
        if (o->val) result.params.emplace_back(o->keyword, o->val);
    // libpq checks the port only when connecting, where a typo reads as "unreachable".
    if (auto port = result.get("port"); port && !port_problem(*port).empty())
        throw Error(ExitCode::BadConfig, "invalid conninfo: invalid port \"" + *port + "\": " + port_problem(*port));
    return result;
}

std::string port_problem(std::string_view value) {
    while (!value.empty()) {
        const std::size_t comma = std::min(value.find(','), value.size());
        const std::string_view item = value.substr(0, comma);
        int port = 0;
        auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), port);
        if (!item.empty() && (ec != std::errc() || end != item.data() + item.size() || port < 1 || port > 65535))
            return "must be a port number from 1 to 65535";
        value.remove_prefix(std::min(comma + 1, value.size()));
    }
    return "";
}

namespace {

bool starts_with_nocase(std::string_view text, std::size_t at, std::string_view word) {
    if (text.size() - at < word.size()) return false;
    for (std::size_t k = 0; k < word.size(); ++k)
        if (std::tolower(static_cast<unsigned char>(text[at + k])) != word[k]) return false;
    return true;
}

// The end of the value of password=… starting at i: a quoted value with its
// backslash escapes (and '' inside single quotes), else a bare word ending at a blank or
// (unless whole_word) at a quote, such as the closing quote of a message's
// "host=a password=x". An unterminated quote runs to the end: better hide too much than
// leak the rest of a secret.
std::size_t secret_end(std::string_view text, std::size_t i, bool whole_word) {
    if (i < text.size() && (text[i] == '\'' || text[i] == '"')) {
        const char quote = text[i++];
        while (i < text.size()) {
            if (text[i] == '\\') {
                i += 2;
            } else if (text[i] == quote) {
                if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') i += 2;
                else return i + 1;
            } else {
                ++i;
            }
        }
        return text.size();
    }
    while (i < text.size() && !is_space(text[i]) &&
           (whole_word || (text[i] != '\'' && text[i] != '"')))
        ++i;
    return i;
}

}  // namespace

// One pass, no regular expression: std::regex recurses per character and overflows the
// stack on a long quoted value.
std::string redact_secrets(std::string_view text) {
    constexpr std::string_view hidden = "********";
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        // password=… (also sslpassword, PGPASSWORD) with blanks allowed around the =.
        if (starts_with_nocase(text, i, "password")) {
            std::size_t j = i + 8;
            while (j < text.size() && is_space(text[j])) ++j;
            if (j < text.size() && text[j] == '=') {
                ++j;
                // The environment's PGPASSWORD=… ends only at a blank.
                const bool env = i >= 2 && text.substr(i - 2, 10) == "PGPASSWORD";
                while (!env && j < text.size() && is_space(text[j])) ++j;
                const std::size_t end = secret_end(text, j, env);
                if (end > j) {
                    out.append(text.substr(i, j - i));
                    out.append(hidden);
                    i = end;
                    continue;
                }
            }
        }
        // postgres[ql]://user:secret@host
        if (starts_with_nocase(text, i, "postgres")) {
            std::size_t j = i + 8;
            if (starts_with_nocase(text, j, "ql")) j += 2;
            if (text.substr(j, 3) == "://") {
                j += 3;
                while (j < text.size() && text[j] != ':' && text[j] != '/' && text[j] != '@' &&
                       !is_space(text[j]))
                    ++j;
                if (j < text.size() && text[j] == ':') {
                    std::size_t at = j + 1;
                    while (at < text.size() && text[at] != '@' && !is_space(text[at])) ++at;
                    if (at < text.size() && text[at] == '@') {
                        out.append(text.substr(i, j + 1 - i));
                        out.append(hidden);
                        i = at;  // the @ and what follows are copied on
                        continue;
                    }
                }
            }
        }
        out += text[i++];
    }
    return out;
}

}  // namespace pgrm
