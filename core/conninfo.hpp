#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgrm {

// A conninfo as libpq sees it, in libpq's order of keywords. Parsing uses PQconninfoParse, so
// anything libpq accepts (key=value or a postgresql:// URI) is accepted.
struct Conninfo {
    std::vector<std::pair<std::string, std::string>> params;

    std::optional<std::string> get(std::string_view key) const;
    void set(const std::string& key, const std::string& value);    // replace or append
    void set_default(const std::string& key, const std::string& value);  // only if absent
    void erase(std::string_view key);
    // key=value form with values quoted as libpq requires.
    std::string str() const;
    // The same with the password replaced by "********".
    std::string redacted() const;
    // True when it holds a secret (is_secret_keyword).
    bool has_secrets() const;
    // The same without its secrets: the form to store where others read it.
    Conninfo without_secrets() const;
};

// libpq's keywords whose values are secrets: password, sslpassword.
bool is_secret_keyword(std::string_view key);

// Throws pgrm::Error(BadConfig) naming libpq's complaint, or a port out of range.
Conninfo parse_conninfo(const std::string& text);

// Empty when value is a port number from 1 to 65535, or a comma-separated list of them
// (one per host; an empty item, or none, means the default port); else the reason.
std::string port_problem(std::string_view value);

// Quote a value for a key=value conninfo when needed: 'it''s' style is not libpq's;
// libpq wants backslash escapes inside single quotes.
std::string quote_conninfo_value(std::string_view value);

// Replace any password in free text (password=…, a URI's user:secret@) by "********".
// Used on every log line and every error message, so nothing below needs to remember.
std::string redact_secrets(std::string_view text);

}  // namespace pgrm
