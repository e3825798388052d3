#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgrm {

// One external program run: argv (never a shell), extra environment, optional stdin,
// a deadline, and an OS user to run as (PostgreSQL programs refuse root).
struct ExecSpec {
    std::vector<std::string> argv;                 // argv[0] is looked up in PATH
    std::map<std::string, std::string> env;        // added to (or replacing in) the environment
    std::optional<std::string> stdin_data;         // none: stdin is /dev/null
    std::chrono::milliseconds timeout{0};          // 0: no deadline
    std::chrono::milliseconds kill_grace{2000};    // SIGTERM, then SIGKILL after this
    std::optional<std::string> run_as;             // OS user name; only honoured when root
    std::optional<std::string> cwd;
    // Called with each complete line of stderr as it arrives (progress of pg_basebackup).
    std::function<void(const std::string&)> on_stderr_line;
};

struct ExecResult {
    int exit_code = -1;        // -1 when killed by a signal
    int term_signal = 0;       // the signal that ended it, 0 if it exited
    bool timed_out = false;    // the deadline passed and we stopped it
    std::string out;           // all of stdout
    std::string err;           // all of stderr
    bool ok() const { return exit_code == 0; }
};

// Runs the program to completion, draining stdout and stderr with poll() so neither
// pipe can fill and deadlock. A non-zero exit is data, not an exception.
// Throws pgrm::Error(BadConfig) when the program cannot be found or started, or the
// run_as user does not exist, with a message that names the program.
ExecResult run_program(const ExecSpec& spec);

// A configured command line ("/usr/local/bin/fence 'node 1'") as argv: split on
// blanks, with single or double quotes and backslash escapes, never expanded by a
// shell. Throws pgrm::Error(BadConfig), with a one-line message, on an unterminated
// quote, a lone backslash at the end, or a control character (a newline, say).
std::vector<std::string> split_command(const std::string& line);

// For log lines: the argv joined with shell-like quoting, for humans only.
std::string describe_argv(const std::vector<std::string>& argv);

// The last line of a program's output, for an error's detail.
std::string last_line(const std::string& text);

}  // namespace pgrm
