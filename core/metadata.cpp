#include "core/metadata.hpp"

#include "core/conninfo.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "schema/schema.hpp"

namespace pgrm {

namespace {

const char* const kNodeColumns =
    "id, name, conninfo, type, upstream_node_id, priority, active, "
    "coalesce(data_directory, '')";

Node node_from(const Rows& r, int row) {
    Node n;
    n.id = static_cast<int>(r.get_int(row, 0));
    n.name = r.get(row, 1);
    n.conninfo = r.get(row, 2);
    n.type = r.get(row, 3);
    if (!r.is_null(row, 4)) n.upstream_node_id = static_cast<int>(r.get_int(row, 4));
    n.priority = static_cast<int>(r.get_int(row, 5));
    n.active = r.get_bool(row, 6);
    n.data_directory = r.get(row, 7);
    return n;
}

Param opt_int(const std::optional<int>& v) {
    return v ? Param(std::to_string(*v)) : std::nullopt;
}

// As save_node stores it: without secrets.
std::string stored_conninfo(const std::string& conninfo) {
    try {
        return parse_conninfo(conninfo).without_secrets().str();
    } catch (const Error&) {
        return redact_secrets(conninfo);
    }
}

}  // namespace

Node node_from_config(const Config& cfg, const std::string& type, std::optional<int> upstream,
                      const std::string& data_directory) {
    Node n;
    n.id = cfg.node;
    n.name = cfg.node_name;
    n.conninfo = cfg.conninfo;
    n.type = type;
    n.upstream_node_id = upstream;
    n.priority = cfg.priority;
    n.data_directory = cfg.data_directory.empty() ? data_directory : cfg.data_directory;
    return n;
}

nlohmann::json to_json(const Node& n) {
    nlohmann::json j = {{"id", n.id},
                        {"name", n.name},
                        {"conninfo", stored_conninfo(n.conninfo)},
                        {"type", n.type},
                        {"priority", n.priority},
                        {"active", n.active}};
    j["upstream_node_id"] = n.upstream_node_id ? nlohmann::json(*n.upstream_node_id) : nullptr;
    return j;
}

Metadata::Metadata(Connection& conn, const std::string& cluster, std::chrono::milliseconds timeout)
    : conn_(conn), cluster_(cluster), schema_name_("repmgr_" + cluster),
      schema_(conn.quote_identifier("repmgr_" + cluster)), timeout_(timeout) {}

Rows Metadata::exec(std::string_view sql, const std::vector<Param>& params) {
    return conn_.exec(sql, params, timeout_);
}

void Metadata::commit_locally() { exec("SET synchronous_commit = local", {}); }

bool Metadata::installed() {
    return exec("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 "
              "AND tablename = 'schema_version'",
              {schema_name_})
        .size() == 1;
}

void Metadata::require_installed() {
    if (!installed())
        throw Error(ExitCode::BadConfig, "cluster \"" + cluster_ + "\" has no metadata on this node", "",
                    "run \"repmgr master register\" on the primary");
}

int Metadata::version() {
    if (!installed()) return 0;
    return static_cast<int>(
        exec("SELECT coalesce(max(version), 0) FROM " + schema_ + ".schema_version")
            .get_int(0, 0));
}

template <typename Body>
auto Metadata::in_transaction(Body body) {
    conn_.run("BEGIN");
    try {
        auto result = body();
        conn_.run("COMMIT");
        return result;
    } catch (...) {
        try {
            if (conn_.ok()) conn_.run("ROLLBACK");
        } catch (const Error&) {
            // The first error is the one to report.
        }
        throw;
    }
}

int Metadata::install_or_upgrade() {
    // One transaction, serialized by an advisory lock, so two nodes registering at
    // once cannot both create the schema.
    return in_transaction([&] {
        exec("SELECT pg_advisory_xact_lock(hashtext($1))", {schema_name_});
        conn_.run("CREATE SCHEMA IF NOT EXISTS " + schema_);
        conn_.run("CREATE TABLE IF NOT EXISTS " + schema_ +
                  ".schema_version (version integer PRIMARY KEY, "
                  "applied_at timestamptz NOT NULL DEFAULT now())");
        int current = version();
        int newest = current;
        for (const auto& m : schema::migrations()) {
            if (m.version <= current) continue;
            log::info("applying metadata schema step " + std::string(m.file) + " to " + schema_name_);
            conn_.run("SET LOCAL search_path TO " + schema_ + ", pg_catalog");
            exec(m.sql);
            exec("INSERT INTO " + schema_ + ".schema_version (version) VALUES ($1)", {std::to_string(m.version)});
            newest = m.version;
        }
        strip_stored_secrets();
        related_node_.reset();
        return newest;
    });
}

// updated_at is left alone: it orders the active primaries.
void Metadata::strip_stored_secrets() {
    Rows r = exec("SELECT id, conninfo FROM " + schema_ + ".repl_nodes ORDER BY id");
    std::string stripped;
    for (int i = 0; i < r.size(); ++i) {
        std::string id = r.get(i, 0);
        try {
            Conninfo ci = parse_conninfo(r.get(i, 1));
            if (!ci.has_secrets()) continue;
            exec("UPDATE " + schema_ + ".repl_nodes SET conninfo = $2 WHERE id = $1",
                 {id, ci.without_secrets().str()});
            stripped += (stripped.empty() ? "" : ", ") + id;
        } catch (const Error& e) {
            log::warning("the stored conninfo of node " + id + " cannot be read (" + e.what() +
                         "): check it for a password");
        }
    }
    if (!stripped.empty())
        log::warning("passwords taken out of the conninfo stored for node " + stripped +
                     ": other nodes must find them in ~/.pgpass or PGPASSFILE");
}

bool Metadata::current() {
    const auto& steps = schema::migrations();
    return version() >= (steps.empty() ? 0 : steps.back().version);
}

std::vector<Node> Metadata::nodes() {
    Rows r = exec(std::string("SELECT ") + kNodeColumns + " FROM " + schema_ +
                        ".repl_nodes WHERE cluster = $1 ORDER BY id",
                        {cluster_});
    std::vector<Node> out;
    for (int i = 0; i < r.size(); ++i) out.push_back(node_from(r, i));
    return out;
}

std::optional<Node> Metadata::node(int id) {
    Rows r = exec(std::string("SELECT ") + kNodeColumns + " FROM " + schema_ +
                        ".repl_nodes WHERE cluster = $1 AND id = $2",
                        {cluster_, std::to_string(id)});
    if (r.empty()) return std::nullopt;
    return node_from(r, 0);
}

std::optional<Node> Metadata::active_primary() {
    Rows r = exec(std::string("SELECT ") + kNodeColumns + " FROM " + schema_ +
                        ".repl_nodes WHERE cluster = $1 AND type = 'primary' AND active "
                        "ORDER BY updated_at DESC LIMIT 1",
                        {cluster_});
    if (r.empty()) return std::nullopt;
    return node_from(r, 0);
}

bool Metadata::save_node(const Node& n) {
    Conninfo ci = parse_conninfo(n.conninfo);
    std::string conninfo = n.conninfo;  // as written, unless it holds a secret
    if (ci.has_secrets()) {
        log::warning("the conninfo of node " + std::to_string(n.id) + " holds a password: it is stored "
                     "in the metadata without it; other nodes must find it in ~/.pgpass or PGPASSFILE");
        conninfo = ci.without_secrets().str();
    }
    return exec("INSERT INTO " + schema_ +
                  ".repl_nodes AS r (id, cluster, name, conninfo, type, upstream_node_id, priority, "
                  "active, data_directory) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                  "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, conninfo = EXCLUDED.conninfo, "
                  "type = EXCLUDED.type, upstream_node_id = EXCLUDED.upstream_node_id, "
                  "priority = EXCLUDED.priority, active = EXCLUDED.active, "
                  "data_directory = coalesce(EXCLUDED.data_directory, r.data_directory), "
                  "updated_at = now() "
                  "RETURNING xmax <> 0",
              {std::to_string(n.id), cluster_, n.name, conninfo, n.type,
               opt_int(n.upstream_node_id), std::to_string(n.priority), n.active ? "true" : "false",
               n.data_directory.empty() ? Param() : Param(n.data_directory)})
        .get_bool(0, 0);
}

void Metadata::deactivate_other_primaries(int keep_id) {
    exec("UPDATE " + schema_ +
                   ".repl_nodes SET active = false, updated_at = now() "
                   "WHERE cluster = $1 AND type = 'primary' AND id <> $2 AND active",
               {cluster_, std::to_string(keep_id)});
}

Metadata::Promotion Metadata::record_promotion(const Node& self, const std::string& details) {
    return in_transaction([&] {
        // Committed here, without waiting for synchronous standbys: the promoted node's
        // own synchronous_standby_names may name standbys that cannot follow it (their WAL
        // past its fork), and its promotion must not hang on them. Client writes still wait.
        conn_.run("SET LOCAL synchronous_commit = local");
        save_node(self);
        Rows old = exec("UPDATE " + schema_ +
                            ".repl_nodes SET active = false, updated_at = now() "
                            "WHERE cluster = $1 AND type = 'primary' AND id <> $2 AND active RETURNING id",
                        {cluster_, std::to_string(self.id)});
        std::vector<int> former;
        std::string ids = "{";
        for (int i = 0; i < old.size(); ++i) {
            former.push_back(static_cast<int>(old.get_int(i, 0)));
            ids += (i ? "," : "") + std::to_string(former.back());
        }
        exec("UPDATE " + schema_ +
                 ".repl_nodes SET upstream_node_id = $2, updated_at = now() "
                 "WHERE cluster = $1 AND type = 'standby' AND upstream_node_id = ANY ($3::int[])",
             {cluster_, std::to_string(self.id), ids + "}"});
        std::string marked;
        for (int id : former) marked += (marked.empty() ? "; node " : ", node ") + std::to_string(id);
        NodeEvent promoted{self.id, "standby_promote", true, details + (marked.empty() ? "" : marked + " marked inactive")};
        if (!former.empty()) promoted.related_node_id = former.front();
        record_event(promoted);
        return Promotion{former, promoted};
    });
}

bool Metadata::remove_node(const Node& judged, const std::string& event, const std::string& details) {
    return exec("WITH gone AS (DELETE FROM " + schema_ +
                    ".repl_nodes WHERE cluster = $1 AND id = $2 AND type = $3 AND active = $4 "
                    "RETURNING id) "
                    "INSERT INTO " + schema_ +
                    ".events (node_id, event, successful, details) "
                    "SELECT id, $5, true, $6 FROM gone RETURNING node_id",
                {cluster_, std::to_string(judged.id), judged.type, judged.active ? "true" : "false", event,
                 redact_secrets(details)})
               .size() == 1;
}

bool Metadata::events_have_related_node() {
    if (!related_node_) related_node_ = version() >= 5;
    return *related_node_;
}

void Metadata::record_event(const NodeEvent& e) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(e.at.time_since_epoch()).count();
    std::string when = std::to_string(us / 1000000) + "." + std::to_string(1000000 + us % 1000000).substr(1);
    std::vector<Param> params = {std::to_string(e.node_id), e.event, e.successful ? "true" : "false",
                                 redact_secrets(e.details), when};
    // Before version 5 (until the primary's repmgrd or master register upgrades it) the
    // row goes without its related node.
    if (!events_have_related_node()) {
        exec("INSERT INTO " + schema_ +
                 ".events (node_id, event, successful, details, event_timestamp) "
                 "VALUES ($1, $2, $3, $4, to_timestamp($5::double precision))",
             params);
        return;
    }
    params.push_back(opt_int(e.related_node_id));
    exec("INSERT INTO " + schema_ +
             ".events (node_id, event, successful, details, event_timestamp, related_node_id) "
             "VALUES ($1, $2, $3, $4, to_timestamp($5::double precision), $6)",
         params);
}

void Metadata::record_monitoring(const MonitoringRow& m) {
    exec("INSERT INTO " + schema_ +
             ".repl_monitor (primary_node, standby_node, last_monitor_time, "
             "last_wal_primary_location, last_wal_standby_location, last_wal_standby_replayed, "
             "replication_lag, apply_lag, last_replayed_xact_time) "
             "VALUES ($1, $2, now(), $3, $4, $5, $6, $7, $8)",
         {std::to_string(m.primary_node), std::to_string(m.standby_node), m.primary_lsn, m.received, m.replayed,
          std::to_string(m.replication_lag), std::to_string(m.apply_lag), m.last_replayed_xact_time});
}

void Metadata::prune_monitoring(int standby_node, int keep_days) {
    exec("DELETE FROM " + schema_ + ".repl_monitor WHERE standby_node = $1 AND "
         "last_monitor_time < now() - make_interval(days => $2)",
         {std::to_string(standby_node), std::to_string(keep_days)});
}

void Metadata::record_last_seen(int node_id) {
    exec("UPDATE " + schema_ + ".repl_nodes SET last_seen = now() WHERE id = $1", {std::to_string(node_id)});
}

std::optional<double> Metadata::seconds_since_seen(int node_id) {
    Rows r = exec("SELECT extract(epoch FROM now() - last_seen)::float8 FROM " + schema_ +
                      ".repl_nodes WHERE id = $1 AND last_seen IS NOT NULL",
                  {std::to_string(node_id)});
    if (r.empty()) return std::nullopt;
    return std::stod(r.get(0, 0));
}

std::optional<double> Metadata::seconds_since_monitored(int standby_node) {
    Rows r = exec("SELECT extract(epoch FROM now() - max(last_monitor_time))::float8 FROM " + schema_ +
                      ".repl_monitor WHERE standby_node = $1",
                  {std::to_string(standby_node)});
    if (r.empty() || r.is_null(0, 0)) return std::nullopt;
    return std::stod(r.get(0, 0));
}

std::vector<Event> Metadata::events(int limit, std::optional<int> node_id,
                                    const std::optional<std::string>& event) {
    Rows r = exec("SELECT id, node_id, event, successful, "
                        "to_char(event_timestamp, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), "
                        "coalesce(details, ''), " +
                        std::string(events_have_related_node() ? "related_node_id" : "NULL::int") + " FROM " + schema_ +
                            ".events WHERE ($2::int IS NULL OR node_id = $2) "
                            "AND ($3::text IS NULL OR event = $3) "
                            "ORDER BY id DESC LIMIT $1",
                        {std::to_string(limit), opt_int(node_id), event});
    std::vector<Event> out;
    for (int i = 0; i < r.size(); ++i) {
        out.push_back({r.get_int(i, 0), static_cast<int>(r.get_int(i, 1)), r.get(i, 2),
                       r.get_bool(i, 3), r.get(i, 4), r.get(i, 5), std::nullopt});
        if (!r.is_null(i, 6)) out.back().related_node_id = static_cast<int>(r.get_int(i, 6));
    }
    return out;
}

namespace {

const char* const kSwitchoverColumns =
    "id, primary_node_id, candidate_node_id, state, detail, deadline < now()";

SwitchoverRequest switchover_from(const Rows& r, int row) {
    return {r.get_int(row, 0), static_cast<int>(r.get_int(row, 1)), static_cast<int>(r.get_int(row, 2)),
            r.get(row, 3), r.get(row, 4), r.get_bool(row, 5)};
}

}  // namespace

std::string Metadata::switchover_channel() const {
    return conn_.quote_identifier(schema_name_ + "_switchover");
}

std::optional<SwitchoverRequest> Metadata::request_switchover(int primary_node_id, int candidate_node_id,
                                                              std::chrono::seconds deadline) {
    exec("BEGIN");
    try {
        exec("UPDATE " + schema_ +
                   ".switchover SET state = 'failed', detail = 'expired before it finished', "
                   "updated_at = now() WHERE state IN ('requested', 'demoting') AND deadline < now()");
        Rows r = exec("INSERT INTO " + schema_ +
                                ".switchover (primary_node_id, candidate_node_id, deadline) "
                                "VALUES ($1, $2, now() + make_interval(secs => $3)) "
                                "ON CONFLICT DO NOTHING RETURNING " + kSwitchoverColumns,
                            {std::to_string(primary_node_id), std::to_string(candidate_node_id),
                             std::to_string(deadline.count())});
        if (!r.empty()) exec("NOTIFY " + switchover_channel());
        exec("COMMIT");
        if (r.empty()) return std::nullopt;
        return switchover_from(r, 0);
    } catch (...) {
        if (conn_.ok()) conn_.run("ROLLBACK");
        throw;
    }
}

std::optional<SwitchoverRequest> Metadata::switchover(long long id) {
    Rows r = exec(std::string("SELECT ") + kSwitchoverColumns + " FROM " + schema_ +
                            ".switchover WHERE id = $1",
                        {std::to_string(id)});
    if (r.empty()) return std::nullopt;
    return switchover_from(r, 0);
}

std::optional<SwitchoverRequest> Metadata::latest_switchover() {
    if (version() < 3) return std::nullopt;  // not upgraded yet: no switchover ever ran
    Rows r = exec(std::string("SELECT ") + kSwitchoverColumns + " FROM " + schema_ +
                        ".switchover WHERE state IN ('requested', 'demoting') ORDER BY id DESC LIMIT 1");
    if (r.empty()) return std::nullopt;
    return switchover_from(r, 0);
}

bool Metadata::move_switchover(long long id, const std::string& from, const std::string& to,
                               const std::string& detail) {
    return exec("UPDATE " + schema_ +
                    ".switchover SET state = $3, detail = $4, updated_at = now() "
                    "WHERE id = $1 AND state = $2",
                {std::to_string(id), from, to, redact_secrets(detail)})
               .command_tuples() == "1";
}

bool Metadata::start_demotion(long long id, const std::string& detail, std::chrono::seconds demotion_bound) {
    return exec("UPDATE " + schema_ +
                    ".switchover SET state = 'demoting', detail = $2, updated_at = now(), "
                    "deadline = greatest(deadline, now() + make_interval(secs => $3::int)) "
                    "WHERE id = $1 AND state = 'requested'",
                {std::to_string(id), redact_secrets(detail), std::to_string(demotion_bound.count())})
               .command_tuples() == "1";
}

void Metadata::listen_switchover() { exec("LISTEN " + switchover_channel()); }

namespace {

const char* const kPauseColumns =
    "paused, generation, node_id, coalesce(changed_by, ''), "
    "coalesce(to_char(changed_at, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), '')";

FailoverPause pause_from(const Rows& r, int row) {
    FailoverPause p;
    p.paused = r.get_bool(row, 0);
    p.generation = r.get_int(row, 1);
    if (!r.is_null(row, 2)) p.node_id = static_cast<int>(r.get_int(row, 2));
    p.changed_by = r.get(row, 3);
    p.changed_at = r.get(row, 4);
    return p;
}

}  // namespace

nlohmann::json to_json(const FailoverPause& p) {
    nlohmann::json j = {{"paused", p.paused}, {"generation", p.generation}};
    j["node_id"] = p.node_id ? nlohmann::json(*p.node_id) : nullptr;
    j["changed_by"] = p.changed_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.changed_by);
    j["changed_at"] = p.changed_at.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.changed_at);
    return j;
}

std::string describe(const FailoverPause& p) {
    if (p.changed_at.empty()) return p.paused ? "paused" : "not paused";
    std::string when = p.changed_at + (p.changed_by.empty() ? "" : " by " + p.changed_by) +
                       (p.node_id ? " on node " + std::to_string(*p.node_id) : "");
    return p.paused ? "paused since " + when : "not paused (unpaused at " + when + ")";
}

std::optional<FailoverPause> Metadata::failover_pause() {
    if (version() < 4) return std::nullopt;
    Rows r = exec(std::string("SELECT ") + kPauseColumns + " FROM " + schema_ + ".failover_pause");
    if (r.empty()) return std::nullopt;
    return pause_from(r, 0);
}

Metadata::PauseChange Metadata::set_failover_paused(bool paused, int node_id, const std::string& by,
                                                    const std::string& details) {
    // The main query sees the row as it was before the update: it is read only when
    // nothing changed.
    Rows r = exec("WITH changed AS (UPDATE " + schema_ +
                      ".failover_pause SET paused = $1, generation = generation + 1, node_id = $2, "
                      "changed_by = $3, changed_at = now() WHERE paused <> $1 RETURNING *), "
                      "event AS (INSERT INTO " + schema_ +
                      ".events (node_id, event, successful, details) "
                      "SELECT $2, $4, true, $5 FROM changed) "
                      "SELECT " + kPauseColumns + ", true FROM changed "
                      "UNION ALL SELECT " + kPauseColumns + ", false FROM " + schema_ +
                      ".failover_pause WHERE NOT EXISTS (SELECT 1 FROM changed)",
                  {paused ? "true" : "false", std::to_string(node_id), by,
                   paused ? "daemon_pause" : "daemon_unpause", redact_secrets(details)});
    if (r.empty()) throw Error(ExitCode::DbQuery, "the failover_pause row of " + schema_name_ + " is missing");
    return {pause_from(r, 0), r.get_bool(0, 5)};
}

}  // namespace pgrm
