#include "plugins/standby/standby.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/server.hpp"

namespace pgrm {

std::optional<bool> accepts_writes(const Node& node, const std::string& hint) {
    std::string who = "node " + std::to_string(node.id) + " (\"" + node.name + "\")";
    try {
        Connection c = Connection::open(node.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
        return !query_server_facts(c).in_recovery;
    } catch (const ConnectionError& e) {
        if (!e.server_alive()) {
            log::info(who + " is not reachable (" + std::string(describe(e.failure())) + "): " + e.what());
            return std::nullopt;
        }
        throw ConnectionError(e.failure(),
                              who + " is running but refused our connection: " + std::string(describe(e.failure())),
                              e.detail(), hint);
    }
}

void register_standby(Registry& registry) {
    register_standby_register(registry);
    register_standby_clone(registry);
    register_standby_promote(registry);
    register_standby_follow(registry);
    register_standby_switchover(registry);
    register_standby_unregister(registry);
}

}  // namespace pgrm
