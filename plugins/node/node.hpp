#pragma once

#include "plugins/plugins.hpp"

namespace pgrm {

void register_node_rejoin(Registry& registry);

}  // namespace pgrm
