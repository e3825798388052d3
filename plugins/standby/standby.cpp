#include "plugins/standby/standby.hpp"

#include "core/error.hpp"

namespace pgrm {

std::optional<int> node_at(const std::vector<Node>& nodes, const std::string& host,
                           const std::string& port) {
    for (const auto& n : nodes) {
        try {
            Conninfo ci = parse_conninfo(n.conninfo);
            if (ci.get("host").value_or("") == host && ci.get("port").value_or("5432") == port)
                return n.id;
        } catch (const Error&) {
            continue;  // a bad conninfo in the metadata names no node
        }
    }
    return std::nullopt;
}

void register_standby(Registry& registry) {
    const unsigned both = PersonaRepmgr | PersonaPgrm;
    register_standby_register(registry);
    register_standby_clone(registry);
    registry.add(std::make_unique<NotImplemented>(Command::Spec{
        "standby", "promote", "",
        "allows manual promotion of a specific standby into a new master in the event of a failover",
        both, NeedsConfig, {}}));
    registry.add(std::make_unique<NotImplemented>(Command::Spec{
        "standby", "follow", "[node]", "allows the standby to re-point itself to a new master",
        both, NeedsConfig, {}}));
}

}  // namespace pgrm
