#include <catch2/catch.hpp>

#include "core/config.hpp"
#include "core/timeouts.hpp"

using namespace std::chrono_literals;
namespace timeouts = pgrm::timeouts;

namespace {

pgrm::Config daemon(int monitor_interval, int attempts, int interval) {
    pgrm::Config c;
    c.monitor_interval_secs = monitor_interval;
    c.reconnect_attempts = attempts;
    c.reconnect_interval = interval;
    return c;
}

// The inequality of repmgrd(8) FENCE BEFORE PROMOTE, with real times in milliseconds from
// the cut and clocks that stray by d: the latest fence against the earliest promotion.
void check_fence_precedes_promotion(const pgrm::Config& c) {
    const double d = timeouts::kClockDriftPpm / 1e6;
    double fence_done = (timeouts::fence_after(c) + timeouts::fence_action()).count() / (1 - d);
    double promotion = -timeouts::check_bound(c).count() / (1 - d) + timeouts::promote_after(c).count() / (1 + d);
    INFO("fence done by " << fence_done << " ms, promotion from " << promotion << " ms after the cut");
    CHECK(promotion - fence_done >= timeouts::kFenceMargin.count());
    // And not much more than the margin: promote_after is no longer than it must be.
    CHECK(promotion - fence_done < timeouts::kFenceMargin.count() + 2);
}

}  // namespace

TEST_CASE("the timing plan: the tests' settings, the defaults", "[timeouts]") {
    // monitor_interval_secs=1, reconnect_attempts=2, reconnect_interval=1 (the e2e tests).
    pgrm::Config fast = daemon(1, 2, 1);
    CHECK(timeouts::probe_round(fast) == 3s);        // 1 s to connect, 1 s for each query
    CHECK(timeouts::fence_after(fast) == 5s);        // 1 interval + 1 pass + 1 probe round
    CHECK(timeouts::fence_action() == 4s);
    CHECK(timeouts::check_bound(fast) == 2s);
    CHECK(timeouts::promote_after(fast) == 12025ms);  // (11 s / 0.999 + 1 s) * 1.001, rounded up
    check_fence_precedes_promotion(fast);

    pgrm::Config defaults;  // 2, 6, 10
    CHECK(timeouts::probe_round(defaults) == 12s);   // 2 s, then 5 s for each query
    CHECK(timeouts::fence_after(defaults) == 64s);
    CHECK(timeouts::check_bound(defaults) == 7s);
    check_fence_precedes_promotion(defaults);
}

TEST_CASE("the fence always precedes the promotion, whatever the settings", "[timeouts]") {
    for (int mi : {1, 2, 5, 60})
        for (int attempts : {1, 2, 6, 100})
            for (int interval : {1, 3, 10, 600}) {
                INFO("monitor_interval_secs=" << mi << " reconnect_attempts=" << attempts
                                              << " reconnect_interval=" << interval);
                pgrm::Config c = daemon(mi, attempts, interval);
                check_fence_precedes_promotion(c);
                // A healthy primary renews its lease a pass and a probe round after the
                // last, at the latest: at least one reconnect interval to spare.
                CHECK(timeouts::fence_after(c) >=
                      std::chrono::seconds(mi + interval) + timeouts::probe_round(c));
            }
}

TEST_CASE("one reconnect attempt still leaves the lease an interval to spare", "[timeouts]") {
    CHECK(timeouts::fence_after(daemon(2, 1, 10)) == timeouts::fence_after(daemon(2, 2, 10)));
}
