#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "cmd/plugins.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

using namespace pgrm;

namespace {

// Warnings still reach the log; the tests only look at what is kept.
struct QuietLog {
    log::Level saved = log::level();
    QuietLog() { log::set_level(log::Level::Error); }
    ~QuietLog() { log::set_level(saved); }
};

}  // namespace

TEST_CASE("warnings outside a capture are not kept", "[log]") {
    QuietLog quiet;
    for (int i = 0; i < 1000; ++i) log::warning("nobody collects this");
    log::WarningCapture capture;
    CHECK(capture.warnings().empty());
}

TEST_CASE("a capture collects only the warnings logged while it is the innermost", "[log]") {
    QuietLog quiet;
    log::warning("before");
    std::vector<std::string> outer_seen;
    {
        log::WarningCapture outer;
        log::notice("not a warning");
        log::warning("outer 1");
        {
            log::WarningCapture inner;
            log::warning("inner, password=secret");
            CHECK(inner.warnings() == std::vector<std::string>{"inner, password=********"});
        }
        log::warning("outer 2");
        outer_seen = outer.warnings();
    }
    log::warning("after");
    CHECK(outer_seen == std::vector<std::string>{"outer 1", "outer 2"});
    log::WarningCapture next;
    CHECK(next.warnings().empty());
}

TEST_CASE("the daemon runs until stopped, so its warnings are not collected", "[log]") {
    Registry registry;
    register_plugins(registry);
    Command* daemon = registry.find("daemon", "");
    REQUIRE(daemon);
    CHECK((daemon->spec().preconditions & LongRunning) != 0);
    for (const auto& c : registry.commands())
        if (c.get() != daemon) CHECK((c->spec().preconditions & LongRunning) == 0);
}

TEST_CASE("a log file that takes no writes is refused when it is opened", "[log]") {
    try {
        log::set_file("/dev/full");
        log::set_file("");
        FAIL("/dev/full accepted as a log file");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::BadConfig);
        CHECK(std::string(e.what()) == "could not write to log file \"/dev/full\": No space left on device");
    }
    // One that does gets a first line at once.
    char path[] = "/tmp/pgrm-log-test-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    log::set_file(path);
    log::set_file("");
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    CHECK_THAT(line, Catch::Contains("[NOTICE] log file opened by pid " + std::to_string(::getpid())));
    std::remove(path);
}
