#include "core/exec.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <tuple>
#include <utility>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.hpp"

extern char** environ;

namespace pgrm {

namespace {

using Clock = std::chrono::steady_clock;

// After the program exits, descendants that escaped it (pg_ctl's postmaster) may keep
// our pipes open for ever: read what is buffered for this long, then stop waiting.
constexpr auto kLinger = std::chrono::milliseconds(250);
// Without a pidfd, how often to check whether the program has exited.
constexpr auto kReapTick = std::chrono::milliseconds(100);

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~Fd() { reset(); }
    int get() const { return fd_; }
    bool open() const { return fd_ >= 0; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);  // no retry on EINTR: Linux frees the fd regardless
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

[[noreturn]] void fail(const std::string& message, int err) {
    throw Error(ExitCode::BadConfig, message + ": " + std::strerror(err));
}

std::pair<Fd, Fd> make_pipe(const std::string& prog) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail("could not run \"" + prog + "\"", errno);
    return {Fd(fds[0]), Fd(fds[1])};
}

void set_nonblocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// A write to a pipe whose reader exited raises SIGPIPE; we want EPIPE instead.
void ignore_sigpipe() {
    static std::once_flag once;
    std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

// Everything the child needs, prepared before fork: after fork only
// async-signal-safe calls are allowed (the parent may have other threads).
struct Identity {
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;
};

// Also sets the user's HOME, USER and LOGNAME in `env`.
Identity lookup_user(const std::string& name, std::map<std::string, std::string>& env) {
    long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buf(hint > 0 ? static_cast<size_t>(hint) : 16384);
    passwd pw{};
    passwd* found = nullptr;
    int rc;
    while ((rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE)
        buf.resize(buf.size() * 2);
    if (rc != 0) fail("could not look up OS user \"" + name + "\"", rc);
    if (!found) throw Error(ExitCode::BadConfig, "unknown OS user \"" + name + "\"");

    Identity id{pw.pw_uid, pw.pw_gid, {}};
    int n = 32;
    for (;;) {
        id.groups.resize(static_cast<size_t>(n));
        int got = n;
        if (::getgrouplist(pw.pw_name, pw.pw_gid, id.groups.data(), &got) >= 0) {
            id.groups.resize(static_cast<size_t>(got));
            break;
        }
        n = std::max(got, n * 2);
    }
    env["HOME"] = pw.pw_dir;
    env["USER"] = pw.pw_name;
    env["LOGNAME"] = pw.pw_name;
    return id;
}

// The current environment with `extra` added or replacing.
std::vector<std::string> build_env(const std::map<std::string, std::string>& extra) {
    std::vector<std::string> out;
    for (char** e = environ; e && *e; ++e) {
        std::string_view entry(*e);
        auto eq = entry.find('=');
        if (extra.count(std::string(entry.substr(0, eq)))) continue;
        out.emplace_back(entry);
    }
    for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
    return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
    std::vector<char*> out;
    for (auto& s : v) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

// What the child reports through the status pipe when it cannot exec.
enum class Stage : int { Setup, Identity, Chdir, Exec };
struct ChildFailure {
    Stage stage;
    int err;
};

[[noreturn]] void child_fail(int status_fd, Stage stage) {
    ChildFailure f{stage, errno};
    while (::write(status_fd, &f, sizeof f) < 0 && errno == EINTR) {}
    ::_exit(127);
}

// Async-signal-safe from here to exec.
[[noreturn]] void child(int status_fd, int in, int out, int err, const Identity* id,
                        const char* cwd, char* const* argv, char* const* envp) {
    ::setpgid(0, 0);

    // Handlers are reset by exec anyway; resetting now keeps the parent's from running
    // here. Ignored signals stay ignored (nohup), except the SIGPIPE we ignored ourselves.
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction sa{};
        if (::sigaction(sig, nullptr, &sa) != 0) continue;
        if (sa.sa_handler == SIG_IGN && sig != SIGPIPE) continue;
        if (sa.sa_handler == SIG_DFL) continue;
        sa = {};
        sa.sa_handler = SIG_DFL;
        ::sigaction(sig, &sa, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    // Move the sources above 2 first, so one dup2 cannot clobber another's source.
    int src[3] = {in, out, err};
    for (int& fd : src)
        if (fd < 3 && (fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
            child_fail(status_fd, Stage::Setup);
    for (int target = 0; target < 3; ++target)
        if (::dup2(src[target], target) < 0) child_fail(status_fd, Stage::Setup);

    if (id) {
        if (::setgroups(id->groups.size(), id->groups.data()) != 0 || ::setgid(id->gid) != 0 ||
            ::setuid(id->uid) != 0)
            child_fail(status_fd, Stage::Identity);
    }
    // After switching user, so the directory is checked with the user's permissions.
    if (cwd && ::chdir(cwd) != 0) child_fail(status_fd, Stage::Chdir);

    ::execvpe(argv[0], argv, envp);
    child_fail(status_fd, Stage::Exec);
}

std::string failure_message(const ChildFailure& f, const ExecSpec& spec) {
    const std::string prog = "could not run \"" + spec.argv[0] + "\"";
    std::string what = std::strerror(f.err);
    switch (f.stage) {
    case Stage::Identity:
        return prog + " as OS user \"" + *spec.run_as + "\": " + what;
    case Stage::Chdir:
        return prog + ": could not change directory to \"" + *spec.cwd + "\": " + what;
    case Stage::Setup:
    case Stage::Exec:
        break;
    }
    return prog + ": " + what;
}

void wait_blocking(pid_t pid) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
}

// Splits stderr into lines on '\n' and '\r' ("\r\n" counts once) for the callback.
class LineSplitter {
public:
    explicit LineSplitter(const std::function<void(const std::string&)>& cb) : cb_(cb) {}

    void feed(const char* data, size_t n) {
        if (!cb_) return;
        for (size_t i = 0; i < n; ++i) {
            char c = data[i];
            bool after_cr = last_cr_;
            last_cr_ = c == '\r';
            if (c == '\n' && after_cr) continue;
            if (c == '\n' || c == '\r') {
                cb_(line_);
                line_.clear();
            } else {
                line_ += c;
            }
        }
    }

    void finish() {
        if (cb_ && !line_.empty()) cb_(line_);
        line_.clear();
    }

private:
    const std::function<void(const std::string&)>& cb_;
    std::string line_;
    bool last_cr_ = false;
};

// Reads what is available now; closes `fd` at end of file or on error.
void drain(Fd& fd, std::string& into, LineSplitter* lines) {
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n > 0) {
            into.append(buf, static_cast<size_t>(n));
            if (lines) lines->feed(buf, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        fd.reset();
        if (lines) lines->finish();
        return;
    }
}

}  // namespace

ExecResult run_program(const ExecSpec& spec) {
    if (spec.argv.empty()) throw Error(ExitCode::BadConfig, "no program to run");
    const std::string& prog = spec.argv[0];
    ignore_sigpipe();

    std::map<std::string, std::string> env_extra;
    std::optional<Identity> identity;
    if (spec.run_as && ::geteuid() == 0) identity = lookup_user(*spec.run_as, env_extra);
    for (const auto& [k, v] : spec.env) env_extra[k] = v;
    std::vector<std::string> env = build_env(env_extra);
    std::vector<std::string> args = spec.argv;
    std::vector<char*> envp = c_strings(env);
    std::vector<char*> argv = c_strings(args);

    Fd in_r, in_w;
    if (spec.stdin_data) {
        std::tie(in_r, in_w) = make_pipe(prog);
    } else {
        in_r = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (!in_r.open()) fail("could not open \"/dev/null\"", errno);
    }
    auto [out_r, out_w] = make_pipe(prog);
    auto [err_r, err_w] = make_pipe(prog);
    auto [status_r, status_w] = make_pipe(prog);

    pid_t pid = ::fork();
    if (pid < 0) fail("could not run \"" + prog + "\"", errno);
    if (pid == 0)
        child(status_w.get(), in_r.get(), out_w.get(), err_w.get(),
              identity ? &*identity : nullptr, spec.cwd ? spec.cwd->c_str() : nullptr,
              argv.data(), envp.data());

    // Also here, so the group exists before we might signal it; loses harmlessly
    // (EACCES) to a child that already exec'd.
    ::setpgid(pid, pid);
    in_r.reset();
    out_w.reset();
    err_w.reset();
    status_w.reset();

    // The status pipe closes on exec (CLOEXEC) or carries why the child gave up.
    ChildFailure failure{};
    ssize_t got;
    while ((got = ::read(status_r.get(), &failure, sizeof failure)) < 0 && errno == EINTR) {}
    if (got == static_cast<ssize_t>(sizeof failure)) {
        wait_blocking(pid);
        throw Error(ExitCode::BadConfig, failure_message(failure, spec));
    }
    status_r.reset();

    ExecResult result;
    // Through syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C". None on old
    // kernels: then we poll on a tick.
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    set_nonblocking(out_r.get());
    set_nonblocking(err_r.get());
    size_t written = 0;
    const std::string none;
    const std::string& input = spec.stdin_data ? *spec.stdin_data : none;
    if (in_w.open()) {
        if (input.empty()) in_w.reset();
        else set_nonblocking(in_w.get());
    }
    LineSplitter lines(spec.on_stderr_line);

    const auto start = Clock::now();
    std::optional<Clock::time_point> deadline;
    if (spec.timeout.count() > 0) deadline = start + spec.timeout;
    std::optional<Clock::time_point> kill_at, linger_end;
    bool reaped = false, killed = false;
    std::optional<int> status;  // none: someone else reaped it (SIGCHLD ignored)

    auto try_reap = [&] {
        int st = 0;
        pid_t r;
        while ((r = ::waitpid(pid, &st, WNOHANG)) < 0 && errno == EINTR) {}
        if (r == pid) status = st;
        reaped = r == pid || (r < 0 && errno == ECHILD);
    };

    try {
        while (out_r.open() || err_r.open() || !reaped) {
            auto now = Clock::now();
            // The deadline is the program's; what it left running in the background
            // after exiting only gets kLinger.
            if (deadline && !reaped && !kill_at && now >= *deadline) {
                result.timed_out = true;
                ::kill(-pid, SIGTERM);
                kill_at = now + spec.kill_grace;
            }
            if (kill_at && !killed && now >= *kill_at) {
                ::kill(-pid, SIGKILL);
                killed = true;
            }
            // Once stopping has finished (or was never needed), leftovers get kLinger.
            if (reaped && !linger_end && (!kill_at || killed)) linger_end = now + kLinger;
            if (linger_end && now >= *linger_end) {
                if (out_r.open()) drain(out_r, result.out, nullptr);
                if (err_r.open()) drain(err_r, result.err, &lines);
                out_r.reset();
                err_r.reset();
                lines.finish();
                continue;
            }

            std::optional<Clock::time_point> wake;
            auto sooner = [&](Clock::time_point t) { wake = wake ? std::min(*wake, t) : t; };
            if (deadline && !reaped && !kill_at) sooner(*deadline);
            if (kill_at && !killed) sooner(*kill_at);
            if (linger_end) sooner(*linger_end);
            if (!reaped && !pidfd.open()) sooner(now + kReapTick);

            pollfd fds[4];
            nfds_t nfds = 0;
            int out_i = -1, err_i = -1, in_i = -1, pid_i = -1;
            auto add = [&](const Fd& fd, short events, int& idx) {
                if (!fd.open()) return;
                idx = static_cast<int>(nfds);
                fds[nfds++] = {fd.get(), events, 0};
            };
            add(out_r, POLLIN, out_i);
            add(err_r, POLLIN, err_i);
            add(in_w, POLLOUT, in_i);
            if (!reaped) add(pidfd, POLLIN, pid_i);

            int ms = -1;
            if (wake) {
                auto left = std::chrono::ceil<std::chrono::milliseconds>(*wake - now);
                ms = static_cast<int>(std::max<long long>(0, left.count()));
            }
            int n = ::poll(fds, nfds, ms);
            if (n < 0) {
                if (errno == EINTR) continue;
                fail("could not wait for \"" + prog + "\"", errno);
            }

            if (out_i >= 0 && fds[out_i].revents) drain(out_r, result.out, nullptr);
            if (err_i >= 0 && fds[err_i].revents) drain(err_r, result.err, &lines);
            if (in_i >= 0 && fds[in_i].revents) {
                if (!(fds[in_i].revents & POLLOUT)) {
                    in_w.reset();  // POLLERR: the program closed its stdin
                } else {
                    ssize_t w =
                        ::write(in_w.get(), input.data() + written, input.size() - written);
                    if (w >= 0) written += static_cast<size_t>(w);
                    else if (errno != EINTR && errno != EAGAIN) in_w.reset();  // EPIPE
                    if (written == input.size()) in_w.reset();
                }
            }
            if (!reaped && (pid_i < 0 || fds[pid_i].revents)) try_reap();
        }
    } catch (...) {
        if (!reaped) {
            ::kill(-pid, SIGKILL);
            wait_blocking(pid);
        }
        throw;
    }

    if (status && WIFEXITED(*status)) {
        result.exit_code = WEXITSTATUS(*status);
    } else if (status && WIFSIGNALED(*status)) {
        result.exit_code = -1;
        result.term_signal = WTERMSIG(*status);
    }
    return result;
}

std::string describe_argv(const std::vector<std::string>& argv) {
    auto safe = [](char c) {
        if (c == '\0') return false;  // strchr would find the terminator
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::strchr("_./=:,@%+-", c) != nullptr;
    };
    std::string out;
    for (const auto& arg : argv) {
        if (!out.empty()) out += ' ';
        if (!arg.empty() && std::all_of(arg.begin(), arg.end(), safe)) {
            out += arg;
            continue;
        }
        out += '\'';
        for (char c : arg) {
            if (c == '\'') out += "'\\''";
            else out += c;
        }
        out += '\'';
    }
    return out;
}

std::vector<std::string> split_command(const std::string& line) {
    // Checked first, so the messages below can quote the line on one line. A newline
    // would end a command in a shell; here it would hide inside a word.
    for (char c : line)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
            throw Error(ExitCode::BadConfig, "command contains a control character");
    std::vector<std::string> argv;
    std::string word;
    bool in_word = false;
    char quote = 0;
    for (size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (quote) {
            if (c == quote) quote = 0;
            else if (c == '\\' && quote == '"' && i + 1 < line.size()) word += line[++i];
            else word += c;
        } else if (c == '\'' || c == '"') {
            quote = c;
            in_word = true;
        } else if (c == '\\') {
            if (i + 1 == line.size())
                throw Error(ExitCode::BadConfig, "command \"" + line + "\" ends with a lone backslash");
            word += line[++i];
            in_word = true;
        } else if (c == ' ' || c == '\t') {
            if (in_word) argv.push_back(word);
            word.clear();
            in_word = false;
        } else {
            word += c;
            in_word = true;
        }
    }
    if (quote) throw Error(ExitCode::BadConfig, "unterminated quote in command \"" + line + "\"");
    if (in_word) argv.push_back(word);
    return argv;
}

std::string last_line(const std::string& text) {
    std::string t = text;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    size_t nl = t.find_last_of('\n');
    return nl == std::string::npos ? t : t.substr(nl + 1);
}

}  // namespace pgrm
