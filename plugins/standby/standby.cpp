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
    register_standby_register(registry);
    register_standby_clone(registry);
    register_standby_promote(registry);
    register_standby_follow(registry);
    register_standby_unregister(registry);
}

}  // namespace pgrm
