#include "plugins/service/service.hpp"

namespace pgrm {

void register_service(Registry& registry) {
    register_service_pause(registry);
    register_service_status(registry);
}

}  // namespace pgrm
