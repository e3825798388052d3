#include "plugins/cluster/cluster.hpp"
#include "plugins/plugins.hpp"

namespace pgrm {

void register_cluster(Registry& registry) {
    registry.add(cluster::make_show());
    registry.add(cluster::make_event());
}

}  // namespace pgrm
