// Conninfo handling (core/conninfo.cpp): libpq's parse, pgrm's key=value writer, and the
// redaction every log line and error message passes through.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/conninfo.hpp"
#include "core/error.hpp"

using namespace pgrm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    redact_secrets(text);
    port_problem(text);
    // Conninfo strings arrive as C strings (argv, libpq) or through parse_config, which
    // refuses a NUL byte.
    text.resize(text.find('\0') == std::string::npos ? text.size() : text.find('\0'));
    Conninfo parsed;
    try {
        parsed = parse_conninfo(text);
    } catch (const Error&) {
        return 0;
    }
    // pgrm writes what it parsed (primary_conninfo, the metadata's conninfo): libpq must
    // read back exactly the same keywords and values.
    const std::string written = parsed.str();
    if (parse_conninfo(written).params != parsed.params) __builtin_trap();
    // And a log line holding it shows no secret.
    const std::string logged = redact_secrets(written);
    for (const auto& [key, value] : parsed.params) {
        if (!is_secret_keyword(key) || value.find_first_not_of('*') == std::string::npos) continue;
        if (logged.find(key + "=" + quote_conninfo_value(value)) != std::string::npos) __builtin_trap();
    }
    return 0;
}
