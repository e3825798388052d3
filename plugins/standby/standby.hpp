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
void register_standby_unregister(Registry& registry);

// The registered node whose conninfo names host and port (default 5432).
std::optional<int> node_at(const std::vector<Node>& nodes, const std::string& host,
                           const std::string& port);

}  // namespace pgrm
