#pragma once

#include <string_view>
#include <vector>

namespace pgrm::schema {

// One numbered step of the metadata schema, applied in order and recorded in
// schema_version, so a later release upgrades a cluster in place.
struct Migration {
    int version;
    std::string_view file;
    std::string_view sql;
};

// Every migration, in version order; embedded from schema/*.sql at build time.
const std::vector<Migration>& migrations();

}  // namespace pgrm::schema
