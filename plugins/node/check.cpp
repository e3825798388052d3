// node check: this node's health for monitoring systems, as single checks (--role,
// --replication-lag, --downstream, --upstream, --archive-ready, --slots, --daemon,
// --server-control) or all of them, in text, JSON, or a Nagios plugin's output and exit codes (--nagios).
#include <algorithm>
#include <map>

#include <CLI/CLI.hpp>

#include "core/daemon_socket.hpp"
#include "core/error.hpp"
#include "core/health.hpp"
#include "core/metadata.hpp"
#include "core/node_identity.hpp"
#include "core/server.hpp"
#include "core/timeouts.hpp"
#include "plugins/node/checks.hpp"
#include "plugins/node/node.hpp"

namespace pgrm::node {

namespace {

class NodeCheck : public Command {
public:
    Spec spec() const override {
        return {"node", "check", "", "checks this node for monitoring systems (Nagios with --nagios)",
                PersonaRepmgr | PersonaPgrm, NeedsConfig, {}};
    }

    void declare(CLI::App& app) override {
        app.add_flag("--role", selected_["role"], "the server's role is the registered one");
        app.add_flag("--replication-lag", selected_["replication_lag"], "a standby's lag behind the primary, in seconds");
        app.add_flag("--downstream", selected_["downstream"], "every standby registered downstream is attached");
        app.add_flag("--upstream", selected_["upstream"], "a standby streams from its registered upstream");
        app.add_flag("--archive-ready", selected_["archive_ready"], "WAL files waiting to be archived");
        app.add_flag("--slots", selected_["slots"], "no replication slot is inactive");
        app.add_flag("--daemon", selected_["daemon"], "repmgrd runs for this node (WARNING while failover is paused)");
        app.add_flag("--server-control", selected_["server_control"], "pgrm can start and stop the server as it runs (its configuration file is found)");
        app.add_option("--warning", warning_, "WARNING threshold of --replication-lag (s) or --archive-ready (files)");
        app.add_option("--critical", critical_, "CRITICAL threshold of --replication-lag (s) or --archive-ready (files)");
        app.add_flag("--nagios", nagios_, "Nagios plugin output and exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN): the one place exit codes are not the seed's");
    }

    Result run(Context& ctx) override {
        if (nagios_ && ctx.options.json)
            throw Error(ExitCode::BadConfig, "--nagios and --json cannot be combined");
        std::vector<CheckResult> results;
        try {
            // 1. Which checks, with which thresholds.
            std::vector<std::string> checks = chosen();
            // 2. Each judged on what this node, the primary and repmgrd say.
            results = run_checks(ctx.cfg(), checks);
        } catch (const Error& e) {
            if (!nagios_) throw;
            // A plugin that cannot judge says UNKNOWN, whatever the reason.
            results = {unknown(chosen_or_node(), one_line(e))};
        }

        // 3. Written for people, for scripts (JSON), or for Nagios.
        Status overall = Status::Ok;
        for (const auto& r : results) overall = worse(overall, r.status);
        Result r;
        if (nagios_) {
            std::string text = nagios_output(results);
            for (size_t start = 0, end; start < text.size(); start = end + 1) {
                end = text.find('\n', start);
                r.lines.push_back(text.substr(start, end - start));
            }
            // The one place exit codes are not the seed's: Nagios reads the status from it.
            r.exit_code = static_cast<ExitCode>(static_cast<int>(overall));
            return r;
        }
        Table table{{"Check", "Status", "Detail"}, {}};
        nlohmann::json list = nlohmann::json::array();
        int not_ok = 0;
        for (const auto& c : results) {
            table.rows.push_back({c.check, std::string(status_name(c.status)), c.text});
            list.push_back(to_json(c));
            if (c.status != Status::Ok) ++not_ok;
        }
        r.table = std::move(table);
        r.summary = "node check: " + std::string(status_name(overall)) +
                    (not_ok ? " (" + std::to_string(not_ok) + " of " + std::to_string(results.size()) + " checks not OK)" : "");
        r.data = {{"node_id", ctx.cfg().node}, {"status", std::string(status_name(overall))}, {"checks", std::move(list)}};
        return r;
    }

private:
    std::map<std::string, bool> selected_;
    std::optional<std::string> warning_;
    std::optional<std::string> critical_;
    bool nagios_ = false;
    Thresholds thresholds_;

    static std::string one_line(const Error& e) {
        std::string text = e.what();
        if (!e.detail().empty()) text += ": " + e.detail().substr(0, e.detail().find('\n'));
        return redact_secrets(text);
    }

    // The one check asked for, else "node" (several, or all).
    std::string chosen_or_node() const {
        std::string only;
        int n = 0;
        for (const auto& [name, on] : selected_)
            if (on) only = name, ++n;
        return n == 1 ? only : "node";
    }

    // The checks asked for (all when none is), in check_names() order; the thresholds of
    // the one that takes them.
    std::vector<std::string> chosen() {
        std::vector<std::string> checks;
        for (const auto& name : check_names())
            if (selected_[name]) checks.push_back(name);
        if (checks.empty()) checks = check_names();
        if (warning_ || critical_) {
            if (checks.size() != 1 || !default_thresholds(checks.front()))
                throw Error(ExitCode::BadConfig, "--warning and --critical go with one check: --replication-lag or --archive-ready");
        }
        for (const auto& name : checks)
            if (auto t = default_thresholds(name)) thresholds_ = *t;
        auto parse = [](const std::optional<std::string>& given, const char* option, double fallback) {
            if (!given) return fallback;
            auto v = parse_threshold(*given);
            if (!v) throw Error(ExitCode::BadConfig, std::string("invalid value \"") + *given + "\" for " + option + ": must be a number >= 0");
            return *v;
        };
        thresholds_.warning = parse(warning_, "--warning", thresholds_.warning);
        thresholds_.critical = parse(critical_, "--critical", thresholds_.critical);
        if (thresholds_.critical < thresholds_.warning)
            throw Error(ExitCode::BadConfig, "--critical must not be below --warning");
        return checks;
    }

    std::vector<CheckResult> run_checks(const Config& cfg, const std::vector<std::string>& checks) {
        auto wants = [&](const char* name) { return std::find(checks.begin(), checks.end(), name) != checks.end(); };
        std::vector<CheckResult> out;

        // This node's server, its record, and (for the lag) the primary's WAL position
        // read before this node's own sample.
        std::optional<Connection> local;
        std::vector<Node> nodes;
        std::optional<Node> me;
        std::optional<std::uint64_t> primary_lsn;
        NodeSample sample;
        if (checks.size() > 1 || !wants("daemon")) {
            local.emplace(Connection::open(cfg.conninfo, ConnectOptions{.connect_timeout = timeouts::kProbeConnect}));
            Metadata meta(*local, cfg.cluster);
            if (meta.installed()) {
                nodes = meta.nodes();
                for (const Node& n : nodes)
                    if (n.id == cfg.node) me = n;
            }
            if (wants("replication_lag")) primary_lsn = active_primary_lsn(nodes, cfg.node);
            sample = sample_node(*local);
        }

        for (const std::string& name : checks) {
            try {
                if (name == "role") {
                    out.push_back(judge_role(cfg.node, me, sample.in_recovery, sample.read_only));
                } else if (name == "replication_lag") {
                    out.push_back(judge_replication_lag(sample, replication_lag(sample, primary_lsn), thresholds_));
                } else if (name == "downstream") {
                    out.push_back(judge_downstream(cfg.node, nodes, replication_clients(*local)));
                } else if (name == "upstream") {
                    std::optional<int> from;
                    if (sample.sender_host && sample.sender_port)
                        from = node_at(nodes, Endpoint{*sample.sender_host, std::to_string(*sample.sender_port)});
                    out.push_back(judge_upstream(sample, me, nodes, from));
                } else if (name == "archive_ready") {
                    out.push_back(judge_archive_ready(archive_ready_count(*local), thresholds_));
                } else if (name == "slots") {
                    out.push_back(judge_slots(replication_slots(*local)));
                } else if (name == "daemon") {
                    out.push_back(judge_daemon(cfg.node, ask_daemon(cfg, timeouts::kDaemonAnswer)));
                } else if (name == "server_control") {
                    ServerFacts facts = query_server_facts(*local);
                    out.push_back(judge_server_control(server_control(
                        cfg, cfg.data_directory.empty() ? facts.data_directory : cfg.data_directory, facts.config_file)));
                }
            } catch (const Error& e) {
                out.push_back(unknown(name, one_line(e)));
            }
        }
        return out;
    }
};

}  // namespace

}  // namespace pgrm::node

namespace pgrm {

void register_node_check(Registry& registry) { registry.add(std::make_unique<node::NodeCheck>()); }

}  // namespace pgrm
