#include "core/command.hpp"

namespace pgrm {

Command* Registry::find(const std::string& group, const std::string& name) const {
    for (const auto& c : commands_) {
        auto s = c->spec();
        if (s.group == group && s.name == name) return c.get();
    }
    return nullptr;
}

}  // namespace pgrm
