#pragma once

#include <string>
#include <string_view>
#include <vector>

// event_notification_command and event_notifications (repmgr.conf(5)): reading and
// checking them, and filling in the command for one event. Pure; core/event runs it.
namespace pgrm {

// Every event pgrm records, in the order repmgr(1) and repmgrd(8) list them under EVENTS
// (a unit test holds the pages to it): the commands', then repmgrd's.
const std::vector<std::string>& event_names();

// The command as argv words with their placeholders still in: split like a shell splits
// words (core/exec's split_command), never run by one. Placeholders: %n node id, %e event,
// %s success (1 or 0), %t timestamp, %d details, %p related node id (empty when none), %%
// a literal %. Throws pgrm::Error(BadConfig), one line, on words that do not split, an
// unknown or unfinished placeholder, or a placeholder in the program's name (the program
// run must not depend on an event's text); empty: no command.
std::vector<std::string> parse_notification_command(const std::string& raw);

// What an event fills the placeholders with, as text.
struct PlaceholderValues {
    std::string node_id;
    std::string event;
    std::string successful;   // "1" or "0"
    std::string timestamp;
    std::string details;
    std::string related_node_id;
};

// The words with their placeholders filled in; a value stays inside the word it fills,
// whatever blanks or quotes it holds. words as parse_notification_command returned them.
std::vector<std::string> fill_placeholders(const std::vector<std::string>& words, const PlaceholderValues& values);

// event_notifications: event names separated by commas (blanks around them ignored).
// Throws pgrm::Error(BadConfig) on an empty item or a name not in event_names(); empty:
// every event.
std::vector<std::string> parse_event_list(const std::string& raw);

// Whether an event is to be notified: every one when the list is empty.
bool notifies(const std::vector<std::string>& selected, std::string_view event);

}  // namespace pgrm
