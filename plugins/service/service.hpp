#pragma once

#include "plugins/plugins.hpp"

namespace pgrm {

// The service group (repmgr 5's name; "daemon" is its alias), one file per command.
void register_service_pause(Registry& registry);   // pause.cpp: service pause, service unpause
void register_service_status(Registry& registry);  // status.cpp

}  // namespace pgrm
