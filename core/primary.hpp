#pragma once

#include <optional>
#include <string>

#include "core/db.hpp"
#include "core/metadata.hpp"

namespace pgrm {

// The cluster's primary as a node's metadata names it, connected.
struct PrimaryLink {
    Node node;
    Connection conn;
};

// The active primary that the metadata reached through local names, connected and
// checked to accept writes. Throws Error(BadConfig) naming the fix when the metadata is
// missing, names no active primary, or names one in recovery; ConnectionError when it
// cannot be reached.
PrimaryLink connect_primary(Connection& local, const std::string& cluster,
                            const ConnectOptions& options = {});

// Whether the server at conninfo accepts writes now: not in recovery, and not made
// read-only by its own configuration (repmgrd's fence). nullopt when it cannot be asked
// within the probe timeouts (timeouts::kProbeConnect, kProbeQuery).
std::optional<bool> accepts_writes(const std::string& conninfo);

}  // namespace pgrm
