#include "cmd/plugins.hpp"

namespace pgrm {

void register_standby(Registry& registry) {
    const unsigned both = PersonaRepmgr | PersonaPgrm;
    registry.add(std::make_unique<NotImplemented>(Command::Spec{
        "standby", "register", "", "registers a standby in a cluster", both, NeedsConfig, {}}));
    registry.add(std::make_unique<NotImplemented>(Command::Spec{
        "standby", "clone", "[node]", "allows creation of a new standby", both, NeedsNothing, {}}));
    registry.add(std::make_unique<NotImplemented>(Command::Spec{
        "standby", "promote", "",
        "allows manual promotion of a specific standby into a new master in the event of a failover",
        both, NeedsConfig, {}}));
    registry.add(std::make_unique<NotImplemented>(Command::Spec{
        "standby", "follow", "[node]", "allows the standby to re-point itself to a new master",
        both, NeedsConfig, {}}));
}

}  // namespace pgrm
