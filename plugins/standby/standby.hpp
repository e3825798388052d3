#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/metadata.hpp"
#include "plugins/plugins.hpp"

namespace pgrm {

void register_standby_register(Registry& registry);
void register_standby_clone(Registry& registry);
void register_standby_promote(Registry& registry);
void register_standby_follow(Registry& registry);
void register_standby_switchover(Registry& registry);
void register_standby_unregister(Registry& registry);


}  // namespace pgrm
