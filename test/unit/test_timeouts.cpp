#include <catch2/catch.hpp>

#include "core/config.hpp"
#include "core/error.hpp"
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

TEST_CASE("the etcd lease: its holder fences before etcd can end it", "[timeouts]") {
    // The e2e tests' timers: fence_after 5 s, so (5 + 4 + 1) s * 1.001 / 0.999 -> 11 s.
    pgrm::Config fast = daemon(1, 2, 1);
    CHECK(timeouts::etcd_lease_ttl(fast) == 11s);
    CHECK(timeouts::etcd_fence_after(fast) == 5978ms);  // 11 s * 0.999 / 1.001 - 4 s - 1 s
    fast.etcd_lease_ttl = 20;
    CHECK(timeouts::etcd_lease_ttl(fast) == 20s);
    CHECK(timeouts::etcd_lease_ttl(pgrm::Config{}) == 70s);  // (64 + 4 + 1) s * 1.001 / 0.999
    // Each endpoint tried in turn: 2 s each.
    fast.etcd_endpoints = {"http://a:1", "http://b:1", "http://c:1"};
    CHECK(timeouts::etcd_call(fast) == 6s);
    for (int mi : {1, 2, 5, 60})
        for (int attempts : {1, 2, 6, 100})
            for (int interval : {1, 3, 10, 600}) {
                pgrm::Config c = daemon(mi, attempts, interval);
                INFO("monitor_interval_secs=" << mi << " reconnect_attempts=" << attempts
                                              << " reconnect_interval=" << interval);
                // Derived, it fences no sooner than a primary cut off from a majority.
                CHECK(timeouts::etcd_fence_after(c) >= timeouts::fence_after(c));
                // The fence, on a clock that runs slow, ends a margin before the lease
                // can, on etcd's clock that runs fast, from the same renewal.
                const double d = timeouts::kClockDriftPpm / 1e6;
                double fence_done = (timeouts::etcd_fence_after(c) + timeouts::fence_action()).count() / (1 - d);
                double lease_ends = std::chrono::milliseconds(timeouts::etcd_lease_ttl(c)).count() / (1 + d);
                CHECK(lease_ends - fence_done >= timeouts::kFenceMargin.count());
            }
}

TEST_CASE("repmgrd refuses a lease too short to renew", "[timeouts]") {
    // monitor_interval_secs=2 and one request (2 s) need 4 s before the fence: 10 s leaves
    // 10 * 0.999 / 1.001 - 5 = 4.98 s, 9 s leaves 3.982 s.
    pgrm::Config c;
    c.path = "repmgr.conf";
    c.dcs = "etcd";
    c.etcd_endpoints = {"http://a:1", "http://b:1"};
    c.etcd_lease_ttl = 10;
    CHECK_NOTHROW(timeouts::check_etcd_lease(c));
    c.etcd_lease_ttl = 9;
    try {
        timeouts::check_etcd_lease(c);
        FAIL("no error");
    } catch (const pgrm::Error& e) {
        CHECK(e.code() == pgrm::ExitCode::BadConfig);
        CHECK(std::string(e.what()) ==
              "repmgr.conf: etcd_lease_ttl = 9 s is too short: a primary would fence itself 3982 ms after its last "
              "renewal (etcd_fence_after), less than a pass and one etcd request (4 s)");
    }
    c.dcs = "none";  // not used
    CHECK_NOTHROW(timeouts::check_etcd_lease(c));
    // Derived, it always passes.
    for (int mi : {1, 2, 5, 60})
        for (int interval : {1, 3, 10}) {
            pgrm::Config d = daemon(mi, 1, interval);
            d.dcs = "etcd";
            CHECK_NOTHROW(timeouts::check_etcd_lease(d));
        }
}
