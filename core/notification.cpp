#include "core/notification.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "core/exec.hpp"
#include "core/result.hpp"

namespace pgrm {

namespace {

[[noreturn]] void refuse(const std::string& why) { throw Error(ExitCode::BadConfig, why); }

constexpr std::string_view kPlaceholders = "nestdp%";

}  // namespace

const std::vector<std::string>& event_names() {
    static const std::vector<std::string> names = {
        // Commands (repmgr(1))
        "primary_register",
        "primary_unregister",
        "standby_register",
        "standby_unregister",
        "standby_clone",
        "standby_promote",
        "standby_follow",
        "standby_switchover",
        "node_rejoin",
        "daemon_pause",
        "daemon_unpause",
        // repmgrd(8): its states (plugins/daemon/state.hpp; a unit test holds this list to
        // them), then what it decides and does. Only state changes start with repmgrd_.
        "repmgrd_starting",
        "repmgrd_local_server_down",
        "repmgrd_unregistered",
        "repmgrd_standby",
        "repmgrd_primary_lost_confirming",
        "repmgrd_primary_lost",
        "repmgrd_paused",
        "repmgrd_electing",
        "repmgrd_promoting",
        "repmgrd_following_new_primary",
        "repmgrd_switchover_wait",
        "repmgrd_needs_rejoin",
        "repmgrd_primary",
        "repmgrd_demoting",
        "repmgrd_fenced",
        "repmgrd_stopped",
        "failover_decision",
        "primary_fenced",
        "primary_unfenced",
    };
    return names;
}

std::vector<std::string> parse_notification_command(const std::string& raw) {
    std::vector<std::string> words = split_command(raw);
    if (!words.empty() && words.front().empty()) refuse("the program's name is empty");
    for (std::size_t w = 0; w < words.size(); ++w) {
        const std::string& word = words[w];
        for (std::size_t i = 0; i < word.size(); ++i) {
            if (word[i] != '%') continue;
            if (i + 1 == word.size())
                refuse("a lone \"%\" ends the word \"" + word + "\"; write %% for a literal %");
            char p = word[++i];
            if (kPlaceholders.find(p) == std::string_view::npos)
                refuse("unknown placeholder \"%" + std::string(1, p) + "\" (known: %n %e %s %t %d %p %%)");
            if (w == 0 && p != '%') refuse("a placeholder in the program's name \"" + word + "\"");
        }
    }
    return words;
}

std::vector<std::string> fill_placeholders(const std::vector<std::string>& words, const PlaceholderValues& v) {
    std::vector<std::string> argv;
    for (const std::string& word : words) {
        std::string out;
        for (std::size_t i = 0; i < word.size(); ++i) {
            if (word[i] != '%' || i + 1 == word.size()) {
                out += word[i];
                continue;
            }
            switch (word[++i]) {
            case 'n': out += v.node_id; break;
            case 'e': out += v.event; break;
            case 's': out += v.successful; break;
            case 't': out += v.timestamp; break;
            case 'd': out += v.details; break;
            case 'p': out += v.related_node_id; break;
            case '%': out += '%'; break;
            default: out += word.substr(i - 1, 2);  // parse_notification_command refused it
            }
        }
        argv.push_back(std::move(out));
    }
    return argv;
}

std::vector<std::string> parse_event_list(const std::string& raw) {
    std::vector<std::string> names;
    if (raw.find_first_not_of(" \t") == std::string::npos) return names;
    for (std::size_t at = 0; at <= raw.size();) {
        std::size_t comma = std::min(raw.find(',', at), raw.size());
        std::string item = raw.substr(at, comma - at);
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (item.empty()) refuse("an empty event name in the list");
        const auto& known = event_names();
        if (std::find(known.begin(), known.end(), item) == known.end())
            refuse("unknown event \"" + escape_control(item) + "\" (see EVENTS in repmgrd(8))");
        if (std::find(names.begin(), names.end(), item) == names.end()) names.push_back(item);
        at = comma + 1;
    }
    return names;
}

bool notifies(const std::vector<std::string>& selected, std::string_view event) {
    return selected.empty() || std::find(selected.begin(), selected.end(), event) != selected.end();
}

}  // namespace pgrm
