#pragma once

// standby unregister and master unregister: who may be removed from the metadata,
// judged apart from doing it (so the rules are unit-tested), and doing it, which both
// commands share.

#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/metadata.hpp"

namespace pgrm {

// What the command saw before changing anything.
struct UnregisterSituation {
    std::string type;                 // what the command removes: "standby" or "primary"
    int node_id = 0;                  // the node asked for (--node-id, else this node)
    std::optional<Node> target;       // its record on the primary; nullopt: not registered
    int primary_id = 0;               // the active primary whose metadata would change
    std::optional<bool> target_writable;  // its server accepts writes; nullopt: unreachable
};

// Why it may not be unregistered (an Error with ERR_BAD_CONFIG, to throw as is), or
// nullopt when it may: the node must be registered with that type; a primary only when
// it is an inactive former primary, never the current one; and never a node whose
// server still accepts writes.
std::optional<Error> unregister_refusal(const UnregisterSituation& s);

struct Unregistered {
    Node node;                    // the record removed
    Node primary;                 // the primary whose metadata it was removed from
    std::vector<Node> downstream; // registered nodes that still name it as their upstream
};

// Finds the primary through this node's metadata (cfg.conninfo), judges node_id there
// with unregister_refusal (asking its server whether it accepts writes), then removes
// its record and records event (standby_unregister, primary_unregister) in one
// statement. Throws the refusal, or Error(BadConfig) when the record changed meanwhile;
// in both cases nothing was changed.
Unregistered unregister_node(const Config& cfg, const std::string& type, int node_id, const std::string& event);

}  // namespace pgrm
