#include "plugins/master/master.hpp"

namespace pgrm {

void register_master(Registry& registry) {
    register_master_register(registry);
    register_master_unregister(registry);
}

}  // namespace pgrm
