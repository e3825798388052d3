// The seed's key=value repmgr.conf reader (core/config.cpp).
#include "test/fuzz/read_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    pgrm::fuzz::read_config(data, size, "repmgr.conf");
    return 0;
}
