#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/event.hpp"
#include "core/notification.hpp"
#include "core/timeouts.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using V = std::vector<std::string>;

namespace {

std::string command_error(const std::string& raw) {
    try {
        pgrm::parse_notification_command(raw);
    } catch (const pgrm::Error& e) {
        CHECK(e.code() == pgrm::ExitCode::BadConfig);
        return e.what();
    }
    FAIL("no error for: " << raw);
    return {};
}

std::string list_error(const std::string& raw) {
    try {
        pgrm::parse_event_list(raw);
    } catch (const pgrm::Error& e) {
        return e.what();
    }
    FAIL("no error for: " << raw);
    return {};
}

const pgrm::PlaceholderValues kValues{"2", "standby_promote", "1", "2026-12-07T10:11:12.345Z",
                                      "promoted to primary on timeline 2; node 1 marked inactive", "1"};

// A scratch directory, removed at the end.
struct Scratch {
    fs::path dir = fs::temp_directory_path() / ("pgrm-event-" + std::to_string(::getpid()));
    Scratch() { fs::create_directories(dir); }
    ~Scratch() { fs::remove_all(dir); }
    std::string read(const std::string& name) const {
        std::ifstream in(dir / name);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
};

pgrm::Config config_with(const std::string& command, const std::string& events = "") {
    pgrm::Config c;
    c.node = 2;
    c.event_notification_command = command;
    c.event_notifications = pgrm::parse_event_list(events);
    return c;
}

}  // namespace

TEST_CASE("the notification command keeps its placeholders in its words", "[event]") {
    CHECK(pgrm::parse_notification_command("/usr/local/bin/page --node %n '%e: %d' %p%%").size() == 5);
    CHECK(pgrm::parse_notification_command("").empty());
    CHECK(pgrm::parse_notification_command("notify %n%e%s%t%d%p%%") == V{"notify", "%n%e%s%t%d%p%%"});
    CHECK(pgrm::parse_notification_command("100%%/notify") == V{"100%%/notify"});  // %% is no placeholder
}

TEST_CASE("a notification command that cannot be filled in is a one-line error", "[event]") {
    CHECK(command_error("notify %x") == "unknown placeholder \"%x\" (known: %n %e %s %t %d %p %%)");
    CHECK(command_error("notify %a") == "unknown placeholder \"%a\" (known: %n %e %s %t %d %p %%)");
    CHECK(command_error("notify 50%") == "a lone \"%\" ends the word \"50%\"; write %% for a literal %");
    CHECK(command_error("notify '%d %'") == "a lone \"%\" ends the word \"%d %\"; write %% for a literal %");
    CHECK(command_error("/usr/bin/%e-handler %d") == "a placeholder in the program's name \"/usr/bin/%e-handler\"");
    CHECK(command_error("'' %e") == "the program's name is empty");
    CHECK(command_error("notify '%e") == "unterminated quote in command \"notify '%e\"");
    CHECK(command_error("notify %e\n%d") == "command contains a control character");
}

TEST_CASE("a placeholder fills its place inside one argument and never splits it", "[event]") {
    auto words = pgrm::parse_notification_command("page -n %n --event=%e \"%t: %d\" %s ok=%p%% %%d");
    CHECK(pgrm::fill_placeholders(words, kValues) ==
          V{"page", "-n", "2", "--event=standby_promote",
            "2026-12-07T10:11:12.345Z: promoted to primary on timeline 2; node 1 marked inactive", "1", "ok=1%",
            "%d"});
    // Values that a shell would split, expand or run stay one literal argument.
    pgrm::PlaceholderValues hostile = kValues;
    hostile.details = "a b 'c' \"d\" $(rm -rf /) `id` ; | > %n";
    hostile.related_node_id = "";
    CHECK(pgrm::fill_placeholders(pgrm::parse_notification_command("notify %d [%p]"), hostile) ==
          V{"notify", "a b 'c' \"d\" $(rm -rf /) `id` ; | > %n", "[]"});
}

TEST_CASE("event_notifications names events, separated by commas", "[event]") {
    CHECK(pgrm::parse_event_list("").empty());
    CHECK(pgrm::parse_event_list("  ").empty());
    CHECK(pgrm::parse_event_list("standby_promote, failover_decision ,primary_fenced,standby_promote") ==
          V{"standby_promote", "failover_decision", "primary_fenced"});
    CHECK(list_error("standby_promote,,primary_fenced") == "an empty event name in the list");
    CHECK(list_error("standby_promote,") == "an empty event name in the list");
    CHECK(list_error("repmgrd_failover_promote") ==
          "unknown event \"repmgrd_failover_promote\" (see EVENTS in repmgrd(8))");
    CHECK(list_error("a\nb") == "unknown event \"a\\nb\" (see EVENTS in repmgrd(8))");
}

TEST_CASE("an empty event list notifies every event, else only those listed", "[event]") {
    CHECK(pgrm::notifies({}, "repmgrd_standby"));
    CHECK(pgrm::notifies({"standby_promote", "primary_fenced"}, "primary_fenced"));
    CHECK_FALSE(pgrm::notifies({"standby_promote", "primary_fenced"}, "repmgrd_standby"));
}

TEST_CASE("event names are unique", "[event]") {
    const auto& names = pgrm::event_names();
    for (std::size_t i = 0; i < names.size(); ++i)
        for (std::size_t j = i + 1; j < names.size(); ++j) CHECK(names[i] != names[j]);
}

TEST_CASE("the settings are checked when the configuration is read", "[event]") {
    const std::string seed = "cluster=test\nnode=2\nconninfo='host=node2'\n";
    pgrm::Config c = pgrm::parse_config(
        seed + "event_notification_command='/usr/local/bin/page %n \"%e: %d\"'\nevent_notifications='standby_promote'\n",
        "repmgr.conf");
    CHECK(c.event_notification_command == "/usr/local/bin/page %n \"%e: %d\"");
    CHECK(c.event_notifications == V{"standby_promote"});
    auto error_of = [&](const std::string& line) -> std::string {
        try {
            pgrm::parse_config(seed + line, "repmgr.conf");
        } catch (const pgrm::Error& e) {
            return e.what();
        }
        return "no error";
    };
    CHECK(error_of("event_notification_command='page %q'\n") ==
          "repmgr.conf:4: event_notification_command: unknown placeholder \"%q\" (known: %n %e %s %t %d %p %%)");
    CHECK(error_of("event_notifications='standby_promote, nope'\n") ==
          "repmgr.conf:4: event_notifications: unknown event \"nope\" (see EVENTS in repmgrd(8))");
    // A TOML string may hold a newline: never one argument with a hidden line in it.
    try {
        pgrm::parse_config("cluster = \"test\"\nnode = 2\nconninfo = \"host=node2\"\n"
                           "event_notification_command = \"page\\nrm %e\"\n",
                           "repmgr.toml");
        FAIL("a newline in the command was taken");
    } catch (const pgrm::Error& e) {
        CHECK(std::string(e.what()) == "repmgr.toml:4: event_notification_command: command contains a control character");
    }
}

TEST_CASE("an event fills in the command, passwords taken out of its details", "[event]") {
    pgrm::NodeEvent e{2, "standby_follow", false, "could not reach host=n1 password=s3cret", 1};
    e.at = std::chrono::system_clock::time_point(1796638272345ms);  // 2026-12-07 10:11:12.345 UTC
    auto argv = pgrm::notification_argv(config_with("notify %n %e %s %t %d %p"), e);
    REQUIRE(argv);
    CHECK(*argv == V{"notify", "2", "standby_follow", "0", "2026-12-07T10:11:12.345Z",
                     "could not reach host=n1 password=********", "1"});
    e.related_node_id.reset();
    CHECK(pgrm::notification_argv(config_with("notify [%p]"), e) == V{"notify", "[]"});
    // None set, or the event not listed: nothing runs.
    CHECK_FALSE(pgrm::notification_argv(config_with(""), e));
    CHECK_FALSE(pgrm::notification_argv(config_with("notify %e", "standby_promote,primary_fenced"), e));
    CHECK(pgrm::notification_argv(config_with("notify %e", "standby_follow"), e));
}

TEST_CASE("%t is the event's time in UTC, to the millisecond", "[event]") {
    CHECK(pgrm::event_time(std::chrono::system_clock::time_point(0ms)) == "1970-01-01T00:00:00.000Z");
    CHECK(pgrm::event_time(std::chrono::system_clock::time_point(1796638272005ms)) == "2026-12-07T10:11:12.005Z");
}

TEST_CASE("record_event without metadata runs the notification, and a failing one only warns", "[event]") {
    Scratch s;
    std::string out = (s.dir / "out").string();
    // printf's %s written %%s: the placeholders' escape.
    pgrm::record_event(config_with("sh -c 'printf \"%%s|\" \"$@\" >> " + out + "' sh %n %e %s '%d'"), nullptr,
                       {3, "primary_fenced", true, "fenced (readonly): cut off"});
    CHECK(s.read("out") == "3|primary_fenced|1|fenced (readonly): cut off|");
    // Not found, or a failure: a warning, nothing thrown.
    CHECK_NOTHROW(pgrm::record_event(config_with("/nonexistent/notify %e"), nullptr, {3, "primary_fenced"}));
    CHECK_NOTHROW(pgrm::record_event(config_with("false"), nullptr, {3, "primary_fenced"}));
}

TEST_CASE("with background notifications, record_event returns at once and they run in order", "[event]") {
    Scratch s;
    std::string gate = (s.dir / "gate").string(), out = (s.dir / "out").string();
    // Each waits for the gate: run in place, the first record_event would not return
    // before the notification's timeout.
    pgrm::Config cfg = config_with("sh -c 'while [ ! -e " + gate + " ]; do sleep 0.01; done; echo \"$1\" >> " + out +
                                   "' sh %e");
    auto start = std::chrono::steady_clock::now();
    {
        pgrm::BackgroundNotifications background;
        for (const char* name : {"repmgrd_primary_lost_confirming", "repmgrd_electing", "failover_decision"})
            pgrm::record_event(cfg, nullptr, {2, name});
        CHECK_FALSE(fs::exists(out));
        std::ofstream(gate).put('\n');
    }  // runs what waits
    CHECK(s.read("out") == "repmgrd_primary_lost_confirming\nrepmgrd_electing\nfailover_decision\n");
    CHECK(std::chrono::steady_clock::now() - start < pgrm::timeouts::kEventNotification);
}
