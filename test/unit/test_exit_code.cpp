#include <catch2/catch.hpp>

#include "core/exit_code.hpp"

using namespace pgrm;

TEST_CASE("exit codes keep the seed's numbers and names", "[exit_code]") {
    struct Row { ExitCode code; int number; const char* name; };
    const Row rows[] = {
        {ExitCode::Success, 0, "SUCCESS"},          {ExitCode::BadConfig, 1, "ERR_BAD_CONFIG"},
        {ExitCode::BadRsync, 2, "ERR_BAD_RSYNC"},   {ExitCode::StopBackup, 3, "ERR_STOP_BACKUP"},
        {ExitCode::NoRestart, 4, "ERR_NO_RESTART"}, {ExitCode::NeedsWalDir, 5, "ERR_NEEDS_XLOG"},
        {ExitCode::DbConnection, 6, "ERR_DB_CON"},  {ExitCode::DbQuery, 7, "ERR_DB_QUERY"},
        {ExitCode::Promoted, 8, "ERR_PROMOTED"},    {ExitCode::BadPassword, 9, "ERR_BAD_PASSWORD"},
    };
    for (const auto& r : rows) {
        CHECK(static_cast<int>(r.code) == r.number);
        CHECK(exit_code_name(r.code) == r.name);
    }
}
