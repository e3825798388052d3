#include "core/exit_code.hpp"

namespace pgrm {

std::string_view exit_code_name(ExitCode code) {
    switch (code) {
    case ExitCode::Success: return "SUCCESS";
    case ExitCode::BadConfig: return "ERR_BAD_CONFIG";
    case ExitCode::BadRsync: return "ERR_BAD_RSYNC";
    case ExitCode::StopBackup: return "ERR_STOP_BACKUP";
    case ExitCode::NoRestart: return "ERR_NO_RESTART";
    case ExitCode::NeedsWalDir: return "ERR_NEEDS_XLOG";
    case ExitCode::DbConnection: return "ERR_DB_CON";
    case ExitCode::DbQuery: return "ERR_DB_QUERY";
    case ExitCode::Promoted: return "ERR_PROMOTED";
    case ExitCode::BadPassword: return "ERR_BAD_PASSWORD";
    }
    return "ERR_UNKNOWN";
}

}  // namespace pgrm
