#pragma once

#include "plugins/plugins.hpp"

namespace pgrm {

void register_master_register(Registry& registry);
void register_master_unregister(Registry& registry);

}  // namespace pgrm
