#include "core/event.hpp"

#include <pthread.h>
#include <signal.h>

#include <ctime>

#include "core/conninfo.hpp"
#include "core/error.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/notification.hpp"
#include "core/timeouts.hpp"

namespace pgrm {

namespace {

std::mutex g_background_mutex;
BackgroundNotifications* g_background = nullptr;  // the one living, if any

std::string how_it_ended(const ExecResult& r) {
    if (r.timed_out) return "timed out after " + timeouts::format(timeouts::kEventNotification) + " and was stopped";
    if (r.term_signal) return "killed by signal " + std::to_string(r.term_signal);
    return "exit status " + std::to_string(r.exit_code);
}

// Runs one notification; what it printed goes into the log, a failure is a warning.
// Returns false when it timed out.
bool run_notification(const std::vector<std::string>& argv, const std::string& event) {
    const std::string what = "event notification for \"" + event + "\"";
    log::info("running " + what + ": " + describe_argv(argv));
    ExecSpec spec;
    spec.argv = argv;
    spec.timeout = timeouts::kEventNotification;
    try {
        ExecResult r = run_program(spec);
        for (const std::string* text : {&r.out, &r.err})
            for (std::size_t at = 0; at < text->size();) {
                std::size_t end = std::min(text->find('\n', at), text->size());
                if (end > at) log::notice("event_notification_command: " + text->substr(at, end - at));
                at = end + 1;
            }
        if (!r.ok()) log::warning(what + " failed: " + how_it_ended(r));
        return !r.timed_out;
    } catch (const Error& e) {
        log::warning(what + " failed: " + e.what());
        return true;
    }
}

}  // namespace

std::string event_time(std::chrono::system_clock::time_point at) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return std::string(buf, n) + "." + std::to_string(1000 + ms % 1000).substr(1) + "Z";
}

std::optional<std::vector<std::string>> notification_argv(const Config& cfg, const NodeEvent& e) {
    if (cfg.event_notification_command.empty() || !notifies(cfg.event_notifications, e.event)) return std::nullopt;
    std::vector<std::string> words = parse_notification_command(cfg.event_notification_command);
    if (words.empty()) return std::nullopt;
    return fill_placeholders(words, {std::to_string(e.node_id), e.event, e.successful ? "1" : "0", event_time(e.at),
                                     redact_secrets(e.details),
                                     e.related_node_id ? std::to_string(*e.related_node_id) : ""});
}

void record_event(const Config& cfg, Metadata* meta, const NodeEvent& e) {
    std::exception_ptr unwritten;
    if (meta) {
        try {
            meta->record_event(e);
        } catch (...) {
            unwritten = std::current_exception();
        }
    }
    std::optional<std::vector<std::string>> argv;
    try {
        argv = notification_argv(cfg, e);
    } catch (const Error& err) {
        // Checked when the configuration was read; never fatal all the same.
        log::warning("event_notification_command: " + std::string(err.what()));
    }
    if (argv) {
        std::unique_lock lock(g_background_mutex);
        if (g_background) {
            g_background->post(std::move(*argv), e.event);
        } else {
            lock.unlock();
            run_notification(*argv, e.event);
        }
    }
    if (unwritten) std::rethrow_exception(unwritten);
}

BackgroundNotifications::BackgroundNotifications() {
    thread_ = std::thread([this] { work(); });
    std::lock_guard lock(g_background_mutex);
    g_background = this;
}

BackgroundNotifications::~BackgroundNotifications() {
    {
        std::lock_guard lock(g_background_mutex);
        if (g_background == this) g_background = nullptr;
    }
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void BackgroundNotifications::post(std::vector<std::string> argv, std::string event) {
    {
        std::lock_guard lock(mutex_);
        if (jobs_.size() == kQueued) {
            log::warning("event notification for \"" + jobs_.front().event + "\" dropped: " +
                         std::to_string(kQueued) + " are waiting");
            jobs_.pop_front();
        }
        jobs_.push_back({std::move(argv), std::move(event)});
    }
    wake_.notify_one();
}

void BackgroundNotifications::work() {
    // The signals are the main loop's: their flags are read there.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
    ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        Job job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        bool finished = run_notification(job.argv, job.event);
        lock.lock();
        if (!finished && stopping_ && !jobs_.empty()) {
            log::warning(std::to_string(jobs_.size()) + " event notifications dropped at exit: the last one timed out");
            jobs_.clear();
        }
    }
}

}  // namespace pgrm
