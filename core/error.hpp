#pragma once

#include <stdexcept>
#include <string>

#include "core/exit_code.hpp"

namespace pgrm {

// The one error type below main: it carries the seed's exit code it maps to, and
// PostgreSQL-style DETAIL/HINT lines. main catches it once and renders it.
class Error : public std::runtime_error {
public:
    Error(ExitCode code, const std::string& message, std::string detail = {},
          std::string hint = {})
        : std::runtime_error(message), code_(code), detail_(std::move(detail)),
          hint_(std::move(hint)) {}

    ExitCode code() const { return code_; }
    const std::string& detail() const { return detail_; }
    const std::string& hint() const { return hint_; }
    // SQLSTATE of a failed query, empty for errors that did not come from the server.
    const std::string& sqlstate() const { return sqlstate_; }
    Error& with_sqlstate(std::string s) { sqlstate_ = std::move(s); return *this; }

private:
    ExitCode code_;
    std::string detail_;
    std::string hint_;
    std::string sqlstate_;
};

}  // namespace pgrm
