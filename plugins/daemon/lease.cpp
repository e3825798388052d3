#include "plugins/daemon/lease.hpp"

namespace pgrm::daemon {

FenceLease::FenceLease(std::chrono::milliseconds retry) : retry_(retry), thread_([this] { run(); }) {}

FenceLease::~FenceLease() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

void FenceLease::renew(std::chrono::steady_clock::time_point until, Fence fence) {
    {
        std::lock_guard lock(mutex_);
        if (spent_) return;
        armed_ = true;
        until_ = until;
        fence_ = std::move(fence);
    }
    changed_.notify_all();
}

void FenceLease::cancel() {
    std::unique_lock lock(mutex_);
    armed_ = spent_ = false;
    ran_.reset();
    changed_.notify_all();
    changed_.wait(lock, [this] { return !running_; });
}

std::optional<FenceLease::Ran> FenceLease::ran() const {
    std::lock_guard lock(mutex_);
    return ran_;
}

bool FenceLease::armed() const {
    std::lock_guard lock(mutex_);
    return armed_;
}

std::chrono::steady_clock::time_point lease_until(std::chrono::steady_clock::time_point last_majority,
                                                  std::chrono::milliseconds fence_after,
                                                  std::chrono::steady_clock::time_point round,
                                                  std::chrono::milliseconds probe_round, bool armed) {
    const auto until = last_majority + fence_after;
    return until > round || armed ? until : round + probe_round;
}

void FenceLease::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        if (!armed_) {
            changed_.wait(lock);
            continue;
        }
        if (std::chrono::steady_clock::now() < until_) {
            changed_.wait_until(lock, until_);
            continue;
        }
        spent_ = running_ = true;
        Fence fence = fence_;
        lock.unlock();
        std::string failed = fence();
        lock.lock();
        running_ = false;
        // Cancelled meanwhile: whoever cancelled no longer wants to hear of it.
        if (armed_) {
            ran_ = Ran{std::chrono::steady_clock::now(), failed};
            if (failed.empty()) armed_ = false;
            else until_ = std::chrono::steady_clock::now() + retry_;
        }
        changed_.notify_all();
    }
}

}  // namespace pgrm::daemon
