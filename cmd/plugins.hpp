#pragma once

#include "core/command.hpp"

namespace pgrm {

// The one list of plugins, in the order help shows them.
void register_plugins(Registry& registry);

}  // namespace pgrm
