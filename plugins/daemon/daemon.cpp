#include "cmd/plugins.hpp"

namespace pgrm {

void register_daemon(Registry& registry) {
    registry.add(std::make_unique<NotImplemented>(Command::Spec{
        "daemon", "", "", "monitors the cluster and manages failover (repmgrd)",
        PersonaRepmgrd | PersonaPgrm, NeedsConfig, {}}));
}

}  // namespace pgrm
