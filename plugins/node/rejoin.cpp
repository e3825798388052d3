// node rejoin [node]: makes this stopped node (a failed or fenced former primary, or a
// standby that can no longer follow) a standby of the current primary, found by asking
// the registered nodes that [node] (any running node of the cluster) lists. The primary
// is checkpointed, this data directory rewound (core/rejoin: pg_rewind, else an rsync
// delta) keeping its own configuration files, started as a standby, re-registered, and
// proven to replay that write.
#include "plugins/node/rejoin.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "core/event.hpp"
#include "core/exec.hpp"
#include "core/log.hpp"
#include "core/node_identity.hpp"
#include "core/recovery.hpp"
#include "core/server.hpp"
#include "core/timeouts.hpp"
#include "plugins/node/node.hpp"

namespace pgrm {

namespace fs = std::filesystem;

namespace {

const char* const kPrimaryLsnSql = "SELECT pg_current_wal_lsn()::text";
const char* const kReceiverSql =
    "SELECT status, coalesce(sender_host, ''), coalesce(sender_port::text, '') "
    "FROM pg_catalog.pg_stat_wal_receiver";
const char* const kReplayedSql = "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)";

std::string node_label(const Node& n) { return "node " + std::to_string(n.id) + " (\"" + n.name + "\")"; }

}  // namespace

const Node& choose_primary(const std::vector<NodeProbe>& probes, int self) {
    std::vector<const NodeProbe*> writable;
    std::string passed_over;
    for (const NodeProbe& p : probes) {
        if (p.node.id == self) continue;
        if (p.reachable && p.writable) writable.push_back(&p);
        if (!p.reachable)
            passed_over += (passed_over.empty() ? "" : "; ") + node_label(p.node) + ": " + p.why_not;
        if (p.reachable && p.fenced)
            passed_over += (passed_over.empty() ? "" : "; ") + node_label(p.node) +
                           ": fenced (read-only by its configuration)";
    }
    if (writable.empty())
        throw Error(ExitCode::BadConfig, "no registered node accepts writes", passed_over,
                    "promote a standby first (repmgr standby promote), then rejoin this node");
    if (writable.size() > 1) {
        std::string names;
        for (const NodeProbe* p : writable) names += (names.empty() ? "" : ", ") + node_label(p->node);
        throw Error(ExitCode::BadConfig, "more than one registered node accepts writes: " + names, "",
                    "leave one primary (stop or fence the others), then rejoin this node");
    }
    if (!writable.front()->marked_primary)
        throw Error(ExitCode::BadConfig,
                    node_label(writable.front()->node) + " accepts writes but is not registered as the primary",
                    "", "register it there first: repmgr master register --force");
    return writable.front()->node;
}

bool promotion_in_progress(const std::vector<NodeProbe>& probes, int self) {
    const NodeProbe* only = nullptr;
    for (const NodeProbe& p : probes) {
        if (p.node.id == self || !p.reachable || !p.writable) continue;
        if (only) return false;
        only = &p;
    }
    return only && !only->marked_primary;
}

void check_local_node(const LocalNode& local) {
    if (local.running)
        throw Error(ExitCode::BadConfig,
                    "the server of node " + std::to_string(local.id) + " is running on \"" +
                        local.data_directory + "\"",
                    "",
                    "stop it first (" + local.stop_command +
                        "): node rejoin never rewinds a running server; a running standby "
                        "that only needs another upstream can use \"repmgr standby follow\"");
    if (!local.control.system_identifier)
        throw Error(ExitCode::BadConfig, "no PostgreSQL data directory in \"" + local.data_directory + "\"", "",
                    "a new node is cloned: repmgr -D " + local.data_directory + " standby clone <primary>");
}

NodeRejoinPlan plan_node_rejoin(const LocalNode& local, const Node& primary,
                                const std::string& primary_system_identifier, const RsyncSource& from,
                                int wait_s) {
    if (local.control.system_identifier != primary_system_identifier)
        throw Error(ExitCode::BadConfig,
                    "the data directory of node " + std::to_string(local.id) +
                        " belongs to another database system than " + node_label(primary),
                    "system identifiers: " + local.control.system_identifier.value_or("none") + " here, " +
                        primary_system_identifier + " on the primary",
                    "replace it with a new copy: repmgr -D " + local.data_directory +
                        " --force standby clone <primary>");
    NodeRejoinPlan plan;
    plan.rewind = judge_rewind(local.control, primary_system_identifier, local.standby_signal);
    RejoinPlan copy = plan_rejoin(plan.rewind, from);
    plan.method = copy.method;
    plan.why = plan.rewind.possible
                   ? std::string("the data directory is an earlier state of the primary's database system, with ") +
                         (local.control.wal_log_hints ? "wal_log_hints on" : "data checksums")
                   : plan.rewind.why_not;
    plan.steps = copy.steps;
    plan.steps.push_back("write standby.signal and primary_conninfo (" + node_label(primary) +
                         ") in postgresql.auto.conf");
    plan.steps.push_back("start the server");
    plan.steps.push_back("re-register node " + std::to_string(local.id) + " as a standby of " + node_label(primary) +
                         ", then wait up to " + std::to_string(wait_s) +
                         " s until it streams from the primary and replays that write");
    plan.steps.push_back("record the event node_rejoin");
    return plan;
}

namespace {

class NodeRejoin : public Command {
public:
    Spec spec() const override {
        return {"node", "rejoin", "[node]",
                "makes this stopped node (a failed or fenced former primary) a standby of the current primary",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    void declare(CLI::App& app) override {
        app.add_option("node", node_, "host of any running node of the cluster (or -h, with -p, -U, -d)");
        app.add_flag("--dry-run", dry_run_, "check everything and print the plan; change nothing");
        app.add_option("--wait", wait_s_,
                       "seconds to wait for the node to stream and replay from the primary (default 60)")
            ->check(CLI::Range(1, 3600));
    }

    Result run(Context& ctx) override {
        const Config& cfg = ctx.cfg();
        const GlobalOptions& o = ctx.options;
        auto started = std::chrono::steady_clock::now();

        // 1. This node: stopped, over a data directory.
        LocalNode local = inspect_local(ctx);
        check_local_node(local);

        // 2. The primary: asked of the registered nodes that the named node lists.
        Conninfo entry_ci = entry_conninfo(ctx);
        std::vector<Node> nodes;
        {
            Connection entry = Connection::open(entry_ci);
            Metadata meta(entry, cfg.cluster);
            meta.require_installed();
            nodes = meta.nodes();
        }
        std::vector<NodeProbe> probes = probe(nodes, cfg);
        if (promotion_in_progress(probes, cfg.node))
            log::info("a node accepts writes but is not recorded as the primary yet: waiting up to " +
                      std::to_string(timeouts::kPromotionRecorded.count()) + " s for its promotion to finish");
        for (auto until = std::chrono::steady_clock::now() + timeouts::kPromotionRecorded;
             promotion_in_progress(probes, cfg.node) && std::chrono::steady_clock::now() < until;) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            probes = probe(nodes, cfg);
        }
        const Node primary_node = choose_primary(probes, cfg.node);
        for (const NodeProbe& p : probes)
            if (p.fenced)
                log::warning(node_label(p.node) + " is a fenced former primary and still runs: "
                             "rejoin it as well (repmgr node rejoin on that node)");
        Conninfo primary_ci = parse_conninfo(primary_node.conninfo);
        Connection primary = Connection::open(primary_ci);
        ServerFacts facts = query_server_facts(primary);
        if (facts.in_recovery)
            throw Error(ExitCode::BadConfig, node_label(primary_node) + " went back into recovery");

        // 3. The plan; refusals happen here, before anything changes.
        std::string host = primary_ci.get("host").value_or("");
        RsyncSource from{is_local_host(host), host, o.remote_user};
        NodeRejoinPlan plan = plan_node_rejoin(local, primary_node, facts.system_identifier, from, wait_s_);
        Result r;
        r.data = {{"node_id", cfg.node},
                  {"primary_node_id", primary_node.id},
                  {"primary", primary_ci.redacted()},
                  {"data_directory", local.data_directory},
                  {"method", plan.method},
                  {"why", plan.why},
                  {"steps", plan.steps}};
        if (dry_run_) {
            for (size_t i = 0; i < plan.steps.size(); ++i)
                r.lines.push_back(std::to_string(i + 1) + ". " + plan.steps[i]);
            r.summary = "node rejoin: dry run, nothing changed; node " + std::to_string(cfg.node) + " would rejoin " +
                        node_label(primary_node) + " with " + plan.method + ": " + plan.why;
            r.data["dry_run"] = true;
            return r;
        }

        try {
            // 4. Rewind (core/rejoin checkpoints the primary first), keeping this node's
            //    configuration files; then the standby settings, and start.
            CopyEnv env;
            env.config = &cfg;
            env.os_user = postgres_os_user(local.data_directory);
            env.major = facts.version_num / 10000;
            env.ignore_rsync_warning = o.ignore_rsync_warning;
            RejoinOutcome done = rejoin(plan.rewind, primary, primary_ci, facts, from, local.data_directory, env);
            if (done.method != plan.method) {
                r.data["method"] = done.method;
                r.data["rewind_error"] = done.rewind_error;
            }
            r.data["bytes_copied"] = done.bytes;
            configure_standby(local.data_directory, primary_conninfo_for(primary_ci, cfg.node_name));
            ExecResult start = LocalServer(local.data_directory, &cfg).start();
            if (!start.ok())
                throw Error(ExitCode::NoRestart, "could not start node " + std::to_string(cfg.node), last_line(start.err),
                            "look at " + local.data_directory + "/log/pgrm-server.log");

            // 5. Re-registered on the primary: a fresh write there, which this node must replay.
            //    It commits without waiting for synchronous standbys: the primary's may be
            //    the nodes still to rejoin.
            Metadata meta(primary, cfg.cluster);
            meta.commit_locally();
            meta.save_node(node_from_config(cfg, "standby", primary_node.id, local.data_directory));
            std::string lsn = primary.exec(kPrimaryLsnSql).get(0, 0);
            wait_for_replay(cfg, primary_ci, lsn, local.data_directory);
            r.data["replayed_lsn"] = lsn;

            double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            char secs[32];
            std::snprintf(secs, sizeof secs, "%.1f", seconds);
            std::string method = r.data["method"];
            record_event(cfg, &meta,
                         {cfg.node, "node_rejoin", true,
                          "rejoined as a standby of node " + std::to_string(primary_node.id) + " with " + method +
                              " in " + secs + " s",
                          primary_node.id});
            r.data["seconds"] = seconds;
            r.summary = "node rejoin: node " + std::to_string(cfg.node) + " (\"" + cfg.node_name +
                        "\") is a standby of " + node_label(primary_node) + ", rejoined with " + method + " in " +
                        secs + " s";
            return r;
        } catch (const Error& e) {
            try {
                Metadata meta(primary, cfg.cluster);
                meta.commit_locally();
                record_event(cfg, &meta, {cfg.node, "node_rejoin", false, e.what(), primary_node.id});
            } catch (const Error&) {
                // the primary went away too (notified all the same): the error says enough
            }
            throw;
        }
    }

private:
    std::string node_;
    bool dry_run_ = false;
    int wait_s_ = static_cast<int>(timeouts::kServerControl.count());

    static LocalNode inspect_local(const Context& ctx) {
        const Config& cfg = ctx.cfg();
        LocalNode local;
        local.id = cfg.node;
        local.data_directory = !cfg.data_directory.empty() ? cfg.data_directory : ctx.options.data_dir;
        if (local.data_directory.empty())
            throw Error(ExitCode::BadConfig, "the data directory of node " + std::to_string(cfg.node) + " is unknown",
                        "", "set data_directory in repmgr.conf, or give it with -D");
        local.data_directory = fs::absolute(local.data_directory).lexically_normal().string();
        if (local.data_directory.size() > 1 && local.data_directory.back() == '/') local.data_directory.pop_back();
        local.running = LocalServer(local.data_directory, &cfg).running();
        local.stop_command = server_control_hint(&cfg, local.data_directory, "stop");
        local.standby_signal = fs::exists(fs::path(local.data_directory) / "standby.signal");
        CopyEnv env;
        env.config = &cfg;
        env.os_user = postgres_os_user(local.data_directory);
        env.major = major_version(local.data_directory);
        local.control = read_control_data(local.data_directory, env);
        return local;
    }

    // PG_VERSION: "15".
    static int major_version(const std::string& data_directory) {
        std::ifstream in(fs::path(data_directory) / "PG_VERSION");
        int major = 0;
        in >> major;
        return in ? major : 0;
    }

    // The named node: this node's conninfo with its host, -p, -U and -d.
    Conninfo entry_conninfo(const Context& ctx) const {
        const GlobalOptions& o = ctx.options;
        std::string host = node_.empty() ? o.host : node_;
        if (host.empty())
            throw Error(ExitCode::BadConfig, "no running node named to ask for the cluster's state", "",
                        "name any running node of the cluster: repmgr node rejoin <host> (with -p, -U, -d as needed)");
        Conninfo ci = parse_conninfo(ctx.cfg().conninfo);
        ci.set("host", host);
        ci.erase("hostaddr");
        if (!o.port.empty()) ci.set("port", o.port); else ci.erase("port");
        if (!o.username.empty()) ci.set("user", o.username);
        if (!o.dbname.empty()) ci.set("dbname", o.dbname);
        return ci;
    }

    // Every other registered node, asked whether it accepts writes and, if it does,
    // whether its own metadata records it as the active primary. All at once: a node
    // that does not answer costs one connect timeout, not one each.
    static std::vector<NodeProbe> probe(const std::vector<Node>& nodes, const Config& cfg) {
        std::vector<std::future<NodeProbe>> pending;
        for (const Node& n : nodes)
            if (n.id != cfg.node) pending.push_back(std::async(std::launch::async, probe_one, n, cfg.cluster));
        std::vector<NodeProbe> probes;
        for (auto& p : pending) probes.push_back(p.get());
        return probes;
    }

    static NodeProbe probe_one(const Node& n, const std::string& cluster) {
        NodeProbe p;
        p.node = n;
        try {
            Connection c = Connection::open(n.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
            UpstreamState server = query_upstream_state(c, timeouts::kProbeQuery);
            p.reachable = true;
            p.writable = !server.in_recovery && !server.read_only;
            p.fenced = !server.in_recovery && server.read_only;
            if (p.writable) {
                Metadata meta(c, cluster);
                auto own = meta.installed() ? meta.node(n.id) : std::nullopt;
                p.marked_primary = own && own->type == "primary" && own->active;
            }
        } catch (const Error& e) {
            p.why_not = e.what();
            log::info(node_label(n) + " is not reachable: " + e.what());
        }
        return p;
    }

    // Until this node's WAL receiver streams from the primary and replay has passed lsn.
    void wait_for_replay(const Config& cfg, const Conninfo& primary, const std::string& lsn,
                         const std::string& data_directory) const {
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s_);
        std::vector<Endpoint> upstream = endpoints_of(primary);
        std::string last = "no WAL receiver";
        while (std::chrono::steady_clock::now() < until) {
            try {
                Connection local = Connection::open(cfg.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect});
                while (std::chrono::steady_clock::now() < until) {
                    Rows rx = local.exec(kReceiverSql);
                    last = rx.empty() ? "no WAL receiver" : "WAL receiver " + rx.get(0, 0);
                    bool streaming = !rx.empty() && rx.get(0, 0) == "streaming" &&
                                     same_server({Endpoint{rx.get(0, 1), rx.get(0, 2)}}, upstream);
                    if (streaming && local.exec(kReplayedSql, {lsn}).get_bool(0, 0)) return;
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                }
            } catch (const Error& e) {
                last = e.what();
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
            }
        }
        throw Error(ExitCode::NoRestart,
                    "node " + std::to_string(cfg.node) + " did not replay the primary's write (" + lsn + ") within " +
                        std::to_string(wait_s_) + " s",
                    last, "look at " + data_directory + "/log/pgrm-server.log");
    }
};

}  // namespace

void register_node_rejoin(Registry& registry) { registry.add(std::make_unique<NodeRejoin>()); }

}  // namespace pgrm
