#include "plugins/node/node.hpp"

namespace pgrm {

void register_node(Registry& registry) { register_node_rejoin(registry); }

}  // namespace pgrm
