#include "cmd/plugins.hpp"

#include "plugins/plugins.hpp"

namespace pgrm {

void register_plugins(Registry& registry) {
    register_master(registry);
    register_standby(registry);
    register_node(registry);
    register_cluster(registry);
    register_service(registry);
    register_daemon(registry);
    register_demo(registry);
}

}  // namespace pgrm
