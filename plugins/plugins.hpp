#pragma once

#include "core/command.hpp"

namespace pgrm {

// Each plugin adds its commands; defined in plugins/<name>/. cmd/plugins.cpp calls them
// in one list: cmd depends on plugins, never the other way.
void register_master(Registry& registry);
void register_standby(Registry& registry);
void register_node(Registry& registry);
void register_cluster(Registry& registry);
void register_service(Registry& registry);
void register_daemon(Registry& registry);
void register_demo(Registry& registry);

}  // namespace pgrm
