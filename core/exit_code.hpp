#pragma once

#include <string_view>

namespace pgrm {

// The seed's exit codes, by number. Scripts test these values, so they never change.
enum class ExitCode : int {
    Success = 0,
    BadConfig = 1,
    BadRsync = 2,
    StopBackup = 3,
    NoRestart = 4,
    NeedsWalDir = 5,
    DbConnection = 6,
    DbQuery = 7,
    Promoted = 8,
    BadPassword = 9,
};

// The seed's name for a code: "SUCCESS", "ERR_DB_CON", ...
std::string_view exit_code_name(ExitCode code);

}  // namespace pgrm
