#include "plugins/standby/standby.hpp"

#include "core/error.hpp"

namespace pgrm {

void register_standby(Registry& registry) {
    register_standby_register(registry);
    register_standby_clone(registry);
    register_standby_promote(registry);
    register_standby_follow(registry);
    register_standby_switchover(registry);
    register_standby_unregister(registry);
}

}  // namespace pgrm
