#pragma once

#include <memory>

#include "core/command.hpp"

namespace pgrm::cluster {

// The cluster group's commands, one per file; cluster.cpp registers them.
std::unique_ptr<Command> make_show();   // show.cpp
std::unique_ptr<Command> make_event();  // event.cpp

}  // namespace pgrm::cluster
