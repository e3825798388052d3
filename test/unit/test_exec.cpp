#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include "core/error.hpp"
#include "core/exec.hpp"

using namespace std::chrono_literals;
using pgrm::ExecResult;
using pgrm::ExecSpec;
using pgrm::run_program;

namespace {

ExecSpec spec_of(std::vector<std::string> argv) {
    ExecSpec s;
    s.argv = std::move(argv);
    return s;
}

ExecResult sh(const std::string& script) { return run_program(spec_of({"sh", "-c", script})); }

std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
}

// A zombie waiting for a non-reaping init counts as dead.
bool process_alive(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    auto paren = line.rfind(')');
    return paren != std::string::npos && line.size() > paren + 2 && line[paren + 2] != 'Z';
}

bool dies_soon(pid_t pid) {
    for (int i = 0; i < 100 && process_alive(pid); ++i) std::this_thread::sleep_for(20ms);
    return !process_alive(pid);
}

}  // namespace

TEST_CASE("arguments reach the program literally, with no shell", "[exec]") {
    std::vector<std::string> args = {"a;b",  "$(echo hi)", "it's", "say \"x\"", "two words",
                                     "`id`", "*",          "$HOME", "a|b>c",   ""};
    std::vector<std::string> argv = {"printf", "%s\\n"};
    std::string expected;
    for (const auto& a : args) {
        argv.push_back(a);
        expected += a + "\n";
    }
    auto r = run_program(spec_of(argv));
    CHECK(r.ok());
    CHECK(r.out == expected);
    CHECK(r.err.empty());
}

TEST_CASE("stdin data is delivered", "[exec]") {
    auto s = spec_of({"cat"});
    s.stdin_data = "hello\nworld";
    auto r = run_program(s);
    CHECK(r.ok());
    CHECK(r.out == "hello\nworld");
}

TEST_CASE("without stdin data the program reads end of file", "[exec]") {
    auto r = run_program(spec_of({"cat"}));
    CHECK(r.ok());
    CHECK(r.out.empty());

    auto s = spec_of({"cat"});
    s.stdin_data = "";
    r = run_program(s);
    CHECK(r.ok());
    CHECK(r.out.empty());
}

TEST_CASE("large stdout, stderr and stdin at once do not deadlock", "[exec]") {
    constexpr size_t MiB = 1024 * 1024;

    auto r = sh("head -c 1048576 /dev/zero & head -c 1048576 /dev/zero >&2; wait");
    CHECK(r.ok());
    CHECK(r.out.size() == MiB);
    CHECK(r.err.size() == MiB);

    std::string input(MiB, '\0');
    for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>('a' + i % 26);
    auto s = spec_of({"sh", "-c", "head -c 1048576 /dev/zero >&2 & cat; wait"});
    s.stdin_data = input;
    r = run_program(s);
    CHECK(r.ok());
    CHECK(r.out == input);
    CHECK(r.err.size() == MiB);
}

TEST_CASE("a program that ignores its stdin does not kill us with SIGPIPE", "[exec]") {
    auto s = spec_of({"true"});
    s.stdin_data = std::string(4 * 1024 * 1024, 'x');
    auto r = run_program(s);
    CHECK(r.ok());
}

TEST_CASE("the program gets the default SIGPIPE disposition", "[exec]") {
    auto r = run_program(spec_of({"grep", "^SigIgn:", "/proc/self/status"}));
    REQUIRE(r.ok());
    unsigned long long mask = std::stoull(r.out.substr(r.out.find(':') + 1), nullptr, 16);
    CHECK((mask & (1ULL << (SIGPIPE - 1))) == 0);
}

TEST_CASE("the timeout stops the program", "[exec]") {
    auto start = std::chrono::steady_clock::now();
    auto s = spec_of({"sleep", "30"});
    s.timeout = 300ms;
    auto r = run_program(s);
    CHECK(r.timed_out);
    CHECK(r.exit_code == -1);
    CHECK(r.term_signal == SIGTERM);
    CHECK_FALSE(r.ok());
    CHECK(elapsed_since(start) < 5s);
}

TEST_CASE("a program that ignores SIGTERM is killed after the grace period", "[exec]") {
    auto start = std::chrono::steady_clock::now();
    auto s = spec_of({"sh", "-c", "trap '' TERM; sleep 30"});
    s.timeout = 200ms;
    s.kill_grace = 300ms;
    auto r = run_program(s);
    CHECK(r.timed_out);
    CHECK(r.term_signal == SIGKILL);
    auto took = elapsed_since(start);
    CHECK(took >= 500ms);
    CHECK(took < 5s);
}

TEST_CASE("the timeout stops the program's children too", "[exec]") {
    auto start = std::chrono::steady_clock::now();
    auto s = spec_of({"sh", "-c", "sleep 30 & echo $!; wait"});
    s.timeout = 300ms;
    auto r = run_program(s);
    CHECK(r.timed_out);
    CHECK(elapsed_since(start) < 5s);
    REQUIRE_FALSE(r.out.empty());
    CHECK(dies_soon(std::stoi(r.out)));
}

TEST_CASE("a background child holding stdout does not hold us", "[exec]") {
    auto start = std::chrono::steady_clock::now();
    auto r = sh("sleep 30 & echo $!");
    CHECK(r.ok());
    CHECK_FALSE(r.timed_out);
    CHECK(elapsed_since(start) < 5s);
    REQUIRE_FALSE(r.out.empty());
    pid_t bg = std::stoi(r.out);
    ::kill(bg, SIGKILL);
    CHECK(dies_soon(bg));
}

TEST_CASE("a missing program is an error, not an exit code", "[exec]") {
    try {
        run_program(spec_of({"/nonexistent/pgrm", "x"}));
        FAIL("no exception");
    } catch (const pgrm::Error& e) {
        CHECK(e.code() == pgrm::ExitCode::BadConfig);
        CHECK(std::string(e.what()) ==
              "could not run \"/nonexistent/pgrm\": No such file or directory");
    }
    // Through PATH the reason may be EACCES, when a PATH directory is unreadable.
    CHECK_THROWS_WITH(run_program(spec_of({"pgrm-no-such-program"})),
                      Catch::StartsWith("could not run \"pgrm-no-such-program\": "));
    CHECK_THROWS_AS(run_program(spec_of({})), pgrm::Error);
}

TEST_CASE("a bad working directory is an error naming it", "[exec]") {
    auto s = spec_of({"pwd"});
    s.cwd = "/nonexistent-pgrm-dir";
    CHECK_THROWS_WITH(run_program(s), Catch::Contains("/nonexistent-pgrm-dir"));

    s.cwd = "/tmp";
    auto r = run_program(s);
    CHECK(r.out == "/tmp\n");
}

TEST_CASE("a non-zero exit or a signal is data", "[exec]") {
    auto r = run_program(spec_of({"false"}));
    CHECK(r.exit_code == 1);
    CHECK(r.term_signal == 0);
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.timed_out);

    r = sh("echo out; echo err >&2; exit 3");
    CHECK(r.exit_code == 3);
    CHECK(r.out == "out\n");
    CHECK(r.err == "err\n");

    r = sh("kill -KILL $$");
    CHECK(r.exit_code == -1);
    CHECK(r.term_signal == SIGKILL);
}

TEST_CASE("env entries are added to or replace the environment", "[exec]") {
    auto s = spec_of({"env"});
    s.env["PGRM_TEST_VAR"] = "a b=c";
    s.env["HOME"] = "/pgrm-home";
    auto r = run_program(s);
    REQUIRE(r.ok());
    CHECK_THAT(r.out, Catch::Contains("\nPGRM_TEST_VAR=a b=c\n") ||
                          Catch::StartsWith("PGRM_TEST_VAR=a b=c\n"));
    std::istringstream lines(r.out);
    int homes = 0;
    for (std::string line; std::getline(lines, line);)
        if (line.rfind("HOME=", 0) == 0) {
            ++homes;
            CHECK(line == "HOME=/pgrm-home");
        }
    CHECK(homes == 1);
}

TEST_CASE("stderr lines reach the callback, split on newline and carriage return",
          "[exec]") {
    std::vector<std::string> lines;
    auto s = spec_of({"sh", "-c", "printf 'one\\ntwo\\rthree\\r\\nfour\\n\\nlast' >&2"});
    s.on_stderr_line = [&](const std::string& l) { lines.push_back(l); };
    auto r = run_program(s);
    CHECK(r.ok());
    CHECK(lines == std::vector<std::string>{"one", "two", "three", "four", "", "last"});
    CHECK(r.err == "one\ntwo\rthree\r\nfour\n\nlast");
}

TEST_CASE("an exception from the callback stops the program", "[exec]") {
    auto start = std::chrono::steady_clock::now();
    auto s = spec_of({"sh", "-c", "echo boom >&2; sleep 30"});
    s.on_stderr_line = [](const std::string& l) { throw std::runtime_error(l); };
    CHECK_THROWS_WITH(run_program(s), "boom");
    CHECK(elapsed_since(start) < 5s);
}

TEST_CASE("our pipes do not leak into the program", "[exec]") {
    // What the program may inherit: 0-2 and whatever we ourselves inherited.
    std::set<std::string> allowed = {"0", "1", "2"};
    if (DIR* d = ::opendir("/proc/self/fd")) {
        int own = ::dirfd(d);
        while (dirent* e = ::readdir(d)) {
            int fd = std::atoi(e->d_name);
            if (e->d_name[0] == '.' || fd == own) continue;
            int flags = ::fcntl(fd, F_GETFD);
            if (flags >= 0 && !(flags & FD_CLOEXEC)) allowed.insert(e->d_name);
        }
        ::closedir(d);
    }
    auto s = spec_of({"sh", "-c", "ls /proc/$$/fd"});
    s.stdin_data = "x";
    auto r = run_program(s);
    REQUIRE(r.ok());
    std::istringstream lines(r.out);
    for (std::string fd; std::getline(lines, fd);) {
        INFO("fd " << fd);
        CHECK(allowed.count(fd) == 1);
    }
}

TEST_CASE("run_as runs the program as that OS user when root", "[exec]") {
    if (::geteuid() != 0) {
        WARN("not root: run_as is not tested");
        return;
    }
    auto s = spec_of({"id", "-un"});
    s.run_as = "pgrm-no-such-user";
    CHECK_THROWS_WITH(run_program(s), "unknown OS user \"pgrm-no-such-user\"");

    passwd* pw = ::getpwnam("postgres");
    if (!pw) {
        WARN("no OS user \"postgres\": run_as is not tested");
        return;
    }
    std::string home = pw->pw_dir;
    s.run_as = "postgres";
    auto r = run_program(s);
    CHECK(r.ok());
    CHECK(r.out == "postgres\n");

    s.argv = {"printenv", "HOME", "USER", "LOGNAME"};
    r = run_program(s);
    CHECK(r.out == home + "\npostgres\npostgres\n");
}

TEST_CASE("describe_argv quotes like a shell, for humans", "[exec]") {
    using pgrm::describe_argv;
    CHECK(describe_argv({}) == "");
    CHECK(describe_argv({"pg_ctl", "-D", "/var/lib/pg/16/main", "-w", "start"}) ==
          "pg_ctl -D /var/lib/pg/16/main -w start");
    CHECK(describe_argv({"a=b:c,d@e%f+g-h_i.j"}) == "a=b:c,d@e%f+g-h_i.j");
    CHECK(describe_argv({"echo", "two words", ""}) == "echo 'two words' ''");
    CHECK(describe_argv({"it's"}) == "'it'\\''s'");
    CHECK(describe_argv({"$(id)", "a;b", "`x`"}) == "'$(id)' 'a;b' '`x`'");
}

TEST_CASE("configured command lines split like a shell would, without one", "[exec]") {
    using V = std::vector<std::string>;
    CHECK(pgrm::split_command("/bin/fence  node1 'a b' \"c \\\"d\\\"\" e\\ f") ==
          V{"/bin/fence", "node1", "a b", "c \"d\"", "e f"});
    CHECK(pgrm::split_command("x '' $(rm -rf /) ;") == V{"x", "", "$(rm", "-rf", "/)", ";"});
    CHECK(pgrm::split_command("   ").empty());
    CHECK(pgrm::split_command("a\t'b\\c' \"%e d\"") == V{"a", "b\\c", "%e d"});  // no escapes in single quotes
    CHECK_THROWS_AS(pgrm::split_command("a 'b"), pgrm::Error);
}

TEST_CASE("hostile command lines are a one-line error, never a crash", "[exec]") {
    auto error_of = [](const std::string& line) -> std::string {
        try {
            pgrm::split_command(line);
        } catch (const pgrm::Error& e) {
            CHECK(e.code() == pgrm::ExitCode::BadConfig);
            return e.what();
        }
        FAIL("no error for: " << line);
        return {};
    };
    CHECK(error_of("a \"b") == "unterminated quote in command \"a \"b\"");
    CHECK(error_of("notify done\\") == "command \"notify done\\\" ends with a lone backslash");
    // A newline would end the command in a shell; here it would hide inside a word. The
    // message does not quote the line, which would break it in two.
    CHECK(error_of("notify\nrm -rf /") == "command contains a control character");
    CHECK(error_of("a 'b\rc'") == "command contains a control character");
    CHECK(error_of(std::string("a\0b", 3)) == "command contains a control character");
    CHECK(error_of("a\x7f") == "command contains a control character");
    // Bytes that are not ASCII are data, as a shell takes them.
    CHECK(pgrm::split_command("caf\xc3\xa9 '\xff'") == std::vector<std::string>{"caf\xc3\xa9", "\xff"});
}
