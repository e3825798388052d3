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

// Whether a registered node accepts writes, asked with the short probe timeout; nullopt
// when no server answers there (nothing listens, no answer in time). A server that
// answers but will not let us in (our password refused, no slot left, starting up) may
// accept writes, so no safe decision can be made: that throws its ConnectionError,
// naming the node and the class, with hint; so does a failed query.
std::optional<bool> accepts_writes(const Node& node, const std::string& hint);

}  // namespace pgrm
