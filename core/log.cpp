#include "core/log.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

#include <sys/time.h>
#include <unistd.h>

#include "core/conninfo.hpp"
#include "core/error.hpp"

namespace pgrm::log {

namespace {
struct State {
    std::mutex mutex;
    Level threshold = Level::Notice;
    std::string path;
    FILE* file = nullptr;  // null: stderr
    WarningCapture* capture = nullptr;  // the innermost live one
};
State& state() {
    static State s;
    return s;
}

// "[2026-11-26 09:10:11.123] [LEVEL] text"; false when the stream refused it.
bool emit(FILE* out, Level level, const std::string& text) {
    timeval tv{};
    gettimeofday(&tv, nullptr);
    std::tm tm{};
    localtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    // Milliseconds: a failover's steps are often less than a second apart.
    return std::fprintf(out, "[%s.%03ld] [%s] %s\n", stamp, static_cast<long>(tv.tv_usec / 1000),
                        level_name(level).data(), text.c_str()) >= 0 &&
           std::fflush(out) == 0;
}

// Opened for append, and written to at once: a file that opens but takes nothing
// (/dev/full, a full disk) fails now, not silently for the daemon's whole life.
FILE* open_log(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "a");
    if (!f)
        throw Error(ExitCode::BadConfig,
                    "could not open log file \"" + path + "\": " + std::strerror(errno));
    std::setvbuf(f, nullptr, _IOLBF, 0);
    errno = 0;
    if (!emit(f, Level::Notice, "log file opened by pid " + std::to_string(::getpid()))) {
        const int err = errno ? errno : EIO;
        std::fclose(f);
        throw Error(ExitCode::BadConfig,
                    "could not write to log file \"" + path + "\": " + std::strerror(err));
    }
    return f;
}
}  // namespace

std::optional<Level> parse_level(std::string_view name) {
    std::string n;
    for (char c : name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == "debug") return Level::Debug;
    if (n == "info") return Level::Info;
    if (n == "notice") return Level::Notice;
    if (n == "warning" || n == "warn") return Level::Warning;
    if (n == "error") return Level::Error;
    return std::nullopt;
}

std::string_view level_name(Level level) {
    switch (level) {
    case Level::Debug: return "DEBUG";
    case Level::Info: return "INFO";
    case Level::Notice: return "NOTICE";
    case Level::Warning: return "WARNING";
    case Level::Error: return "ERROR";
    }
    return "LOG";
}

void set_level(Level threshold) { state().threshold = threshold; }
Level level() { return state().threshold; }

void set_file(const std::string& path) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    FILE* f = path.empty() ? nullptr : open_log(path);
    if (s.file) std::fclose(s.file);
    s.file = f;
    s.path = path;
}

void reopen() {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    if (s.path.empty()) return;
    FILE* f = open_log(s.path);
    if (s.file) std::fclose(s.file);
    s.file = f;
}

void write(Level level, std::string_view message) {
    auto& s = state();
    std::string text = redact_secrets(message);
    std::lock_guard lock(s.mutex);
    if (level == Level::Warning && s.capture) s.capture->warnings_.push_back(text);
    if (level < s.threshold) return;
    // A log file that fails later (its disk filled up): the line goes to stderr instead.
    if (!emit(s.file ? s.file : stderr, level, text) && s.file) emit(stderr, level, text);
}

WarningCapture::WarningCapture() {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    outer_ = s.capture;
    s.capture = this;
}

WarningCapture::~WarningCapture() {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    // Scoped, so the innermost is always the one ending.
    s.capture = outer_;
}

std::vector<std::string> WarningCapture::warnings() const {
    std::lock_guard lock(state().mutex);
    return warnings_;
}

}  // namespace pgrm::log
