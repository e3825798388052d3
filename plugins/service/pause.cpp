// service pause, service unpause: stop and resume automatic failover in the whole cluster
// (repmgr 5's names; repmgr 4's "daemon pause" and "daemon unpause" still reach them). The
// flag is one row of the metadata (schema/004), written on the primary with an event, so
// that every node replicates it and each repmgrd reads it from its own server: while
// paused, a repmgrd that loses its primary neither promotes nor follows (state paused), a
// primary cut off from a majority does not fence itself, and both go on monitoring;
// unpaused, they fail over or fence then if it is still so. Both commands wait for each
// standby to replay the change.
//
// With the primary down nothing can be written that the standbys would replicate. service
// unpause then asks this node's repmgrd, through its socket, to go on despite the pause
// (to be run on each standby's host), and the standby that is promoted lifts the pause
// from the metadata. service pause with the primary down is refused: it could hold nobody.
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/daemon_socket.hpp"
#include "core/error.hpp"
#include "core/event.hpp"
#include "core/log.hpp"
#include "core/primary.hpp"
#include "core/server.hpp"
#include "core/timeouts.hpp"
#include "plugins/service/service.hpp"

namespace pgrm {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const char* const kReplayedSql =
    "SELECT pg_catalog.pg_is_in_recovery(), "
    "coalesce(pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_lsn, false)";

// "postgres@db2": who changed the pause, as the metadata records it.
std::string who() {
    std::string user = "uid " + std::to_string(::geteuid());
    passwd pw{};
    passwd* found = nullptr;
    char buf[4096];
    if (::getpwuid_r(::geteuid(), &pw, buf, sizeof buf, &found) == 0 && found) user = pw.pw_name;
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) return user;
    return user + "@" + host;
}

std::string named(const Node& n) { return "node " + std::to_string(n.id) + " (\"" + n.name + "\")"; }

// A field of a daemon's answer when it has the type asked for (the socket's other end
// may be anything), else fallback.
template <typename T>
T field(const nlohmann::json& doc, const char* key, T fallback) {
    auto it = doc.is_object() ? doc.find(key) : doc.end();
    if (it == doc.end()) return fallback;
    if constexpr (std::is_same_v<T, bool>) return it->is_boolean() ? it->template get<bool>() : fallback;
    else return it->is_string() ? it->template get<std::string>() : fallback;
}

// Whether a node has the change: a standby that replayed the primary's WAL up to it.
struct Reached {
    Node node;
    bool has_it = false;
    std::string detail;
};

class ServicePause : public Command {
public:
    explicit ServicePause(bool pause) : pause_(pause) {}

    Spec spec() const override {
        if (pause_)
            return {"service", "pause", "", "pauses automatic failover and fencing on every node; repmgrd keeps monitoring",
                    PersonaRepmgr | PersonaPgrm, NeedsConfig, {"daemon"}};
        return {"service", "unpause", "", "resumes automatic failover on every node",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {"daemon"}};
    }

    void declare(CLI::App& app) override {
        app.add_flag("--dry-run", dry_run_, "check that the change can be made and say what it would be; change nothing");
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();

        // 1. The primary, as this node's metadata names it: the flag is written there.
        Connection local = Connection::open(cfg.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
        Metadata local_meta(local, cfg.cluster);
        local_meta.require_installed();
        std::optional<Node> primary = local_meta.active_primary();
        if (!primary)
            throw Error(ExitCode::BadConfig, "cluster \"" + cfg.cluster + "\" has no active primary registered", "",
                        "run \"repmgr master register\" on the primary");
        std::optional<Connection> conn = connect_node(*primary, "the " + verb() + " is written on the primary");
        if (!conn && !pause_) return resume_here(cfg, local_meta, *primary);
        if (!conn)
            throw Error(ExitCode::DbConnection, "failover not paused: primary " + named(*primary) + " is not reachable",
                        "the pause is written on the primary, from which every node replicates it",
                        "see \"repmgr cluster show\"; once a primary runs, run \"repmgr service pause\" again");
        if (query_in_recovery(*conn, timeouts::kProbeQuery))
            throw Error(ExitCode::BadConfig, "registered primary " + named(*primary) + " is in recovery", "",
                        "promote a standby, or register the current primary with \"repmgr master register --force\"");

        // 2. The flag as it is; the schema brought to version 4 if it is older (never
        //    paused then).
        Metadata meta(*conn, cfg.cluster, timeouts::kProbeQuery);
        meta.commit_locally();
        std::optional<FailoverPause> before = meta.failover_pause();
        bool already = before ? before->paused == pause_ : !pause_;
        if (dry_run_) return dry_run(cfg, *primary, before, already);
        if (!before && !already) meta.install_or_upgrade();

        // 3. The change, with its event, unless it is so already.
        Metadata::PauseChange change{before.value_or(FailoverPause{}), false};
        if (!already) {
            std::string details = std::string(pause_ ? "failover paused" : "failover resumed") + " by " + who() +
                                  " on node " + std::to_string(cfg.node);
            change = meta.set_failover_paused(pause_, cfg.node, who(), details);
            // Its row went with the change.
            if (change.changed) record_event(cfg, nullptr, {cfg.node, event_name(), true, details});
        }

        // 4. Each other node replays it.
        std::string lsn = query_current_lsn(*conn, timeouts::kProbeQuery);
        std::vector<Reached> reached = await_replay(meta.nodes(), primary->id, lsn);

        // 5. For people, and for scripts.
        Result r;
        Table table{{"ID", "Name", "Role", "Has it"}, {{std::to_string(primary->id), primary->name, "primary", "yes (written here)"}}};
        nlohmann::json jnodes = nlohmann::json::array();
        jnodes.push_back({{"id", primary->id}, {"name", primary->name}, {"has_it", true}, {"detail", "primary"}});
        std::string lacking;
        for (const Reached& n : reached) {
            table.rows.push_back({std::to_string(n.node.id), n.node.name, n.node.type, n.has_it ? "yes" : "no: " + n.detail});
            jnodes.push_back({{"id", n.node.id}, {"name", n.node.name}, {"has_it", n.has_it}, {"detail", n.detail}});
            if (n.has_it) continue;
            lacking += (lacking.empty() ? "" : ", ") + named(n.node);
            log::warning(named(n.node) + " does not have the " + verb() + " yet (" + n.detail + "): its repmgrd " +
                         (pause_ ? "may fail over" : "stays paused") + " until it replays it");
        }
        r.table = std::move(table);
        std::string state = describe(change.pause);
        r.summary = "service " + verb() + ": " +
                    (already ? "failover was already " + state + "; nothing changed"
                             : "automatic failover " + std::string(pause_ ? "paused" : "resumed") + " in cluster \"" +
                                   cfg.cluster + "\"") +
                    (lacking.empty() ? "" : "; not yet on " + lacking);
        r.data = {{"cluster", cfg.cluster},
                  {"changed", !already},
                  {"pause", to_json(change.pause)},
                  {"primary_node_id", primary->id},
                  {"nodes", std::move(jnodes)}};
        return r;
    }

private:
    bool pause_;
    bool dry_run_ = false;

    std::string verb() const { return pause_ ? "pause" : "unpause"; }
    std::string event_name() const { return pause_ ? "daemon_pause" : "daemon_unpause"; }

    Result dry_run(const Config& cfg, const Node& primary, const std::optional<FailoverPause>& now, bool already) {
        FailoverPause shown = now.value_or(FailoverPause{});
        Result r;
        r.summary = "service " + verb() + " --dry-run: primary " + named(primary) + " can be reached; " +
                    (already ? "failover is " + describe(shown) + ": nothing would change"
                             : "failover would be " + std::string(pause_ ? "paused" : "resumed") + " in cluster \"" +
                                   cfg.cluster + "\"");
        r.data = {{"cluster", cfg.cluster},
                  {"changed", false},
                  {"would_change", !already},
                  {"pause", to_json(shown)},
                  {"primary_node_id", primary.id}};
        return r;
    }

    // Every active node but the primary, once it replayed up to lsn, or why not within
    // timeouts::kPauseTakesEffect (one deadline for all). All at once: a node that does
    // not answer costs one connect timeout, not one each.
    static std::vector<Reached> await_replay(const std::vector<Node>& nodes, int primary_id, const std::string& lsn) {
        auto deadline = Clock::now() + timeouts::kPauseTakesEffect;
        std::vector<std::future<Reached>> pending;
        for (const Node& n : nodes)
            if (n.active && n.id != primary_id)
                pending.push_back(std::async(std::launch::async, await_one, n, lsn, deadline));
        std::vector<Reached> out;
        for (auto& p : pending) out.push_back(p.get());
        return out;
    }

    static Reached await_one(const Node& n, const std::string& lsn, Clock::time_point deadline) {
        Reached r{n, false, "not reachable"};
        try {
            std::optional<Connection> c = connect_node(n, "");
            while (c) {
                Rows row = c->exec(kReplayedSql, {lsn}, timeouts::kProbeQuery);
                if (!row.get_bool(0, 0)) {
                    r.detail = "it accepts writes: no standby";
                    break;
                }
                r.has_it = row.get_bool(0, 1);
                r.detail = r.has_it ? "replayed" : "not replayed within " + timeouts::format(timeouts::kPauseTakesEffect);
                if (r.has_it || Clock::now() >= deadline) break;
                std::this_thread::sleep_for(50ms);
            }
        } catch (const Error& e) {
            r.detail = e.what();
        }
        return r;
    }

    // service unpause with the primary down: this node's repmgrd goes on despite the pause
    // the metadata here still holds.
    Result resume_here(const Config& cfg, Metadata& local_meta, const Node& primary) {
        std::string down = "primary " + named(primary) + " is not reachable";
        std::optional<FailoverPause> pause = local_meta.failover_pause();
        Result r;
        r.data = {{"cluster", cfg.cluster},
                  {"changed", false},
                  {"pause", to_json(pause.value_or(FailoverPause{}))},
                  {"primary_node_id", primary.id},
                  {"primary_reachable", false}};
        if (!pause || !pause->paused) {
            log::warning(down);
            r.summary = "service unpause: failover is not paused, as node " + std::to_string(cfg.node) +
                        "'s metadata says; nothing changed";
            return r;
        }
        std::vector<std::string> others;
        std::string others_text;
        for (const Node& n : local_meta.nodes()) {
            if (!n.active || n.id == primary.id || n.id == cfg.node || n.type != "standby") continue;
            others.push_back(n.name);
            others_text += (others_text.empty() ? "" : ", ") + named(n);
        }
        r.data["other_standbys"] = others;
        // A paused primary does not fence itself (plugins/daemon/state.cpp): one that runs,
        // merely cut off from here, would stay writable beside the standby promoted.
        log::warning(down + ": make sure it is down; a paused primary does not fence itself, so one that runs "
                            "cut off from here stays writable beside the standby promoted");
        std::string me = "node " + std::to_string(cfg.node) + "'s repmgrd";
        if (dry_run_) {
            r.summary = "service unpause --dry-run: " + down + "; " + me + " would be asked to go on with failover "
                        "despite the pause";
            return r;
        }

        // Asked through its socket; then its state shows whether it took it.
        nlohmann::json request = {{"request", "resume_failover"}, {"generation", pause->generation}};
        DaemonReply reply = ask_daemon(cfg, timeouts::kDaemonAnswer, request);
        std::string stays = "failover stays paused: " + down;
        if (!reply.running)
            throw Error(ExitCode::DbConnection, stays + " and no repmgrd runs for node " + std::to_string(cfg.node),
                        "the pause is in the primary's metadata, which the standbys only replicate",
                        "run \"repmgr service unpause\" on the host of a standby whose repmgrd runs, or start the "
                        "primary again");
        if (!field(reply.answer, "accepted", false))
            throw Error(ExitCode::BadConfig, stays + ", and " + me + " did not take the request: " +
                                                 field(reply.answer, "error", reply.error));
        auto deadline = Clock::now() + timeouts::kPauseTakesEffect;
        std::string state;
        for (;;) {
            DaemonReply now = ask_daemon(cfg, timeouts::kDaemonAnswer);
            if (!field(now.state, "paused", true)) break;
            state = now.state.is_object() ? field(now.state, "state", std::string("?")) : now.error;
            if (Clock::now() >= deadline)
                throw Error(ExitCode::BadConfig, me + " still counts failover as paused", "its state: " + state,
                            "it may reach the primary: run \"repmgr service unpause\" where the primary can be "
                            "reached");
            std::this_thread::sleep_for(100ms);
        }
        log::warning(down + ": the pause stays in the metadata until the standby promoted lifts it");
        // No metadata takes it: notified only.
        record_event(cfg, nullptr,
                     {cfg.node, "daemon_unpause", true,
                      me + " goes on with failover despite pause " + std::to_string(pause->generation) + ": " + down});
        r.summary = "service unpause: " + down + "; " + me + " goes on with failover despite the pause";
        if (!others.empty())
            r.lines.push_back("run \"repmgr service unpause\" on the hosts of " + others_text +
                              " too, so that their repmgrd take part");
        r.data["resumed_node_id"] = cfg.node;
        return r;
    }
};

}  // namespace

void register_service_pause(Registry& registry) {
    registry.add(std::make_unique<ServicePause>(true));
    registry.add(std::make_unique<ServicePause>(false));
}

}  // namespace pgrm
