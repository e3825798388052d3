#include "cmd/plugins.hpp"

namespace pgrm {

void register_cluster(Registry& registry) {
    (void)registry;
}

}  // namespace pgrm
