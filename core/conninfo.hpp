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
};

// Throws pgrm::Error(BadConfig) naming libpq's complaint.
Conninfo parse_conninfo(const std::string& text);

// Quote a value for a key=value conninfo when needed: 'it''s' style is not libpq's;
// libpq wants backslash escapes inside single quotes.
std::string quote_conninfo_value(std::string_view value);

// Replace any password in free text (password=…, a URI's user:secret@) by "********".
// Used on every log line and every error message, so nothing below needs to remember.
std::string redact_secrets(std::string_view text);

}  // namespace pgrm
