#pragma once

#include "plugins/plugins.hpp"

namespace pgrm {

void register_node_rejoin(Registry& registry);
void register_node_status(Registry& registry);
void register_node_check(Registry& registry);

}  // namespace pgrm
