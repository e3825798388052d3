// The TOML repmgr.conf reader (core/config.cpp, toml++ behind a guard for what it
// cannot take): a .toml name selects it whatever the text looks like.
#include "test/fuzz/read_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    pgrm::fuzz::read_config(data, size, "repmgr.toml");
    return 0;
}
