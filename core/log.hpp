#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgrm::log {

enum class Level { Debug = 0, Info = 1, Notice = 2, Warning = 3, Error = 4 };

// "debug", "info", "notice", "warning", "error" (case-insensitive); nullopt otherwise.
std::optional<Level> parse_level(std::string_view name);
std::string_view level_name(Level level);

// Threshold, and where lines go: stderr, or a file opened for append. Never stdout,
// which belongs to the command's result.
void set_level(Level threshold);
Level level();
void set_file(const std::string& path);  // empty: stderr; throws pgrm::Error if unopenable
void reopen();                            // after logrotate (SIGHUP)

// "[2026-11-26 09:10:11] [WARNING] message", secrets redacted. Warnings are also kept
// by the innermost live WarningCapture, if any.
void write(Level level, std::string_view message);

// Collects the warnings logged while it lives, for one command run's result (the JSON
// document's "warnings"). Outside any capture nothing is kept: a process that runs for
// months (repmgrd) must not grow with every warning it logs. Captures nest; each collects
// only what is logged while it is the innermost.
class WarningCapture {
public:
    WarningCapture();
    ~WarningCapture();
    WarningCapture(const WarningCapture&) = delete;
    WarningCapture& operator=(const WarningCapture&) = delete;

    std::vector<std::string> warnings() const;

private:
    friend void write(Level, std::string_view);
    WarningCapture* outer_;
    std::vector<std::string> warnings_;
};

inline void debug(std::string_view m) { write(Level::Debug, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void notice(std::string_view m) { write(Level::Notice, m); }
inline void warning(std::string_view m) { write(Level::Warning, m); }
inline void error(std::string_view m) { write(Level::Error, m); }

}  // namespace pgrm::log
