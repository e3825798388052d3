#include "cmd/plugins.hpp"

namespace pgrm {

void register_demo(Registry& registry) {
    (void)registry;
}

}  // namespace pgrm
