#pragma once

// Both configuration readers take hostile text: a typo, a truncated file, anything. The
// only acceptable outcomes are a Config or a pgrm::Error naming the line; any other
// exception, an abort or a sanitizer report is a defect.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.hpp"
#include "core/conninfo.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

namespace pgrm::fuzz {

inline void read_config(const std::uint8_t* data, std::size_t size, const std::string& path) {
    log::set_level(log::Level::Error);  // unknown keys are warnings: not worth a line each
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    Config config;
    try {
        config = parse_config(text, path);
    } catch (const Error&) {
        return;
    }
    // What loaded is what the other commands rely on without checking again.
    if (config.node < 1 || config.cluster.empty() || config.conninfo.empty()) __builtin_trap();
    parse_conninfo(config.conninfo);
}

}  // namespace pgrm::fuzz
