#pragma once

#include <string>
#include <vector>

namespace pgrm {

// The whole program below main: resolve the persona, parse, apply the command's
// preconditions, run it, render its result or error. Returns the exit code.
int dispatch(const std::vector<std::string>& argv);

}  // namespace pgrm
