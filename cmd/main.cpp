#include <string>
#include <vector>

#include "cmd/dispatch.hpp"

int main(int argc, char** argv) {
    return pgrm::dispatch(std::vector<std::string>(argv, argv + argc));
}
