#include "plugins/node/node.hpp"

namespace pgrm {

void register_node(Registry& registry) {
    register_node_rejoin(registry);
    register_node_status(registry);
    register_node_check(registry);
}

}  // namespace pgrm
