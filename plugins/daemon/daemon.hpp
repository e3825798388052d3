#pragma once

#include "plugins/plugins.hpp"

namespace pgrm {

// daemon pause and daemon unpause (plugins/daemon/pause.cpp).
void register_daemon_pause(Registry& registry);

}  // namespace pgrm
