#include "core/conninfo.hpp"

#include <libpq-fe.h>

#include <memory>
#include <regex>

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

std::string quote_conninfo_value(std::string_view value) {
    bool plain = !value.empty();
    for (char c : value)
        if (c == ' ' || c == '\'' || c == '\\' || c == '=' || c == '\t' || c == '\n') plain = false;
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
        out += k + "=" + (hide_password && k == "password" ? "********" : quote_conninfo_value(v));
    }
    return out;
}

std::string Conninfo::str() const { return join(params, false); }
std::string Conninfo::redacted() const { return join(params, true); }

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
    return result;
}

std::string redact_secrets(std::string_view text) {
    // password='quoted \' value' | password=bare ; and scheme://user:secret@host
    static const std::regex kv(R"((password\s*=\s*)('(\\.|''|[^'\\])*'|[^\s'"]+))",
                               std::regex::icase);
    static const std::regex uri(R"(((?:postgres|postgresql)://[^:/@\s]*:)[^@\s]*@)",
                                std::regex::icase);
    static const std::regex env(R"((PGPASSWORD=)\S+)");
    std::string s(text);
    if (s.find_first_of("pP") == std::string::npos) return s;
    s = std::regex_replace(s, kv, "$1********");
    s = std::regex_replace(s, uri, "$1********@");
    s = std::regex_replace(s, env, "$1********");
    return s;
}

}  // namespace pgrm
