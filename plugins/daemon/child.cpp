#include "plugins/daemon/child.hpp"

#include <nlohmann/json.hpp>

namespace pgrm::daemon {

namespace {

std::string how_it_ended(const ExecResult& run) {
    if (run.timed_out) return "timed out and was stopped";
    if (run.term_signal) return "killed by signal " + std::to_string(run.term_signal);
    return "exit status " + std::to_string(run.exit_code);
}

}  // namespace

ChildOutcome read_outcome(const ExecResult& run) {
    nlohmann::json doc = nlohmann::json::parse(run.out, nullptr, false);
    if (!doc.is_object()) {
        std::string tail = last_line(run.out);
        return {false, how_it_ended(run) + ", no JSON result" + (tail.empty() ? "" : ": " + tail)};
    }
    auto text = [](const nlohmann::json& j, const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    bool ok = run.ok() && doc.value("ok", false);
    if (auto err = doc.find("error"); err != doc.end() && err->is_object()) {
        std::string message = text(*err, "message"), detail = text(*err, "detail");
        return {false, message + (detail.empty() ? "" : ": " + detail) + " (" + how_it_ended(run) + ")"};
    }
    std::string summary = text(doc, "summary");
    if (!ok) return {false, (summary.empty() ? std::string("failed") : summary) + " (" + how_it_ended(run) + ")"};
    return {true, summary};
}

std::pair<log::Level, std::string> read_log_line(std::string_view line) {
    // "[date time] [LEVEL] text"
    auto close = line.find("] [");
    if (line.empty() || line.front() != '[' || close == std::string_view::npos)
        return {log::Level::Notice, std::string(line)};
    auto name_end = line.find("] ", close + 3);
    if (name_end == std::string_view::npos) return {log::Level::Notice, std::string(line)};
    auto level = log::parse_level(line.substr(close + 3, name_end - close - 3));
    if (!level) return {log::Level::Notice, std::string(line)};
    return {*level, std::string(line.substr(name_end + 2))};
}

}  // namespace pgrm::daemon
