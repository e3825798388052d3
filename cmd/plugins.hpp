#pragma once

#include "core/command.hpp"

namespace pgrm {

// Each plugin adds its commands; defined in plugins/<name>/.
void register_master(Registry& registry);
void register_standby(Registry& registry);
void register_cluster(Registry& registry);
void register_daemon(Registry& registry);
void register_demo(Registry& registry);

// The one list of plugins, in the order help shows them.
void register_plugins(Registry& registry);

}  // namespace pgrm
