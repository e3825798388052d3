#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgrm {

// Everything repmgr.conf can say. Field names follow the settings' names.
struct Config {
    std::string path;               // the file it was loaded from

    std::string cluster;            // required: names the schema repmgr_<cluster>
    int node = 0;                   // required: this node's id, > 0 (alias node_id)
    std::string conninfo;           // required: how to reach this node's server
    std::string node_name;          // default: "node<id>"
    std::string data_directory;     // this node's PGDATA
    std::string pg_bindir;          // where pg_ctl, pg_basebackup… live; default: detected
    int priority = 100;             // failover preference; 0 = never promote
    std::string log_level = "notice";
    std::string log_file;           // empty: stderr
    std::string ssh_options;        // added to rsync's ssh command line (-p, -i, -o …)
    // How the service manager starts, stops, restarts and reloads this node's server
    // (argv, never a shell: pg_ctlcluster 15 main start); empty: pg_ctl, or pg_ctlcluster
    // for a Debian cluster.
    std::string service_start_command;
    std::string service_stop_command;
    std::string service_restart_command;
    std::string service_reload_command;
    std::string config_directory;   // where postgresql.conf is, when not in data_directory

    // repmgrd
    std::string failover = "manual";     // or "automatic"
    int monitor_interval_secs = 2;
    int reconnect_attempts = 6;
    int reconnect_interval = 10;         // seconds
    int monitoring_history_days = 7;
    std::string fence = "readonly";      // or "shutdown"
    int shutdown_check_timeout = 60;     // seconds: a switchover's clean shutdown of the primary
    std::string promote_command;         // argv split on spaces and quotes, never a shell
    std::string follow_command;
    std::string fence_command;
    std::string http_listen;             // "host:port" of repmgrd's HTTP endpoint; empty: none
    // Run for each event (core/event): an argv template with placeholders, never a shell;
    // empty: none. event_notifications: the events it runs for; empty: every one.
    std::string event_notification_command;
    std::vector<std::string> event_notifications;

    // A distributed configuration store (repmgrd(8), FENCE BEFORE PROMOTE): "none", or
    // "etcd", whose leader key under a lease decides who may take writes.
    std::string dcs = "none";
    std::vector<std::string> etcd_endpoints;  // http(s)://host:port, tried in turn
    std::string etcd_prefix;             // default: "/pgrm/<cluster>/"
    int etcd_lease_ttl = 0;              // seconds; 0: derived (timeouts::etcd_lease_ttl)
    std::string etcd_cacert;             // TLS: the CA that signed etcd's certificates
    std::string etcd_cert;               // TLS: this client's certificate and key
    std::string etcd_key;
    std::string etcd_user;               // etcd's own authentication
    std::string etcd_password;           // never logged, nor shown
    // A candidate may revoke the lease of a lost primary that refused every check and whose
    // daemon is silent in etcd, instead of waiting for it to end (repmgrd(8), "With etcd").
    bool etcd_failover_on_refusal = false;

    bool operator==(const Config&) const = default;
};

// One row of the settings table: it feeds both readers, validation, and the docs.
struct SettingSpec {
    std::string name;
    std::vector<std::string> aliases;
    std::string type;               // "string", "integer", "identifier", "conninfo", ...
    std::string default_value;      // as a user would write it, "" for none
    bool required = false;
    std::string doc;
    // Validates raw and stores it; throws std::invalid_argument with the reason.
    void (*apply)(Config& config, const std::string& raw);
};
const std::vector<SettingSpec>& settings_table();

// Where http_listen says to listen: "host:port", or "[address]:port" for an IPv6
// address. Throws std::invalid_argument with the reason.
struct ListenAddress {
    std::string host;               // a name or an address, without brackets
    int port = 0;                   // 1 to 65535
};
ListenAddress parse_listen_address(std::string_view raw);

// One of etcd_endpoints: "http://host:port" or "https://host:port" (an IPv6 address in
// brackets), nothing after the port. Throws std::invalid_argument with the reason.
struct EtcdEndpoint {
    bool tls = false;
    std::string host;
    int port = 0;
};
EtcdEndpoint parse_etcd_endpoint(std::string_view raw);

// Reads the file, in the seed's key=value format or in TOML (chosen by a .toml suffix
// or a [table] header). Throws pgrm::Error(BadConfig) with "file:line: key: reason".
// Unknown keys are a logged warning.
Config load_config(const std::string& path);
Config parse_config(std::string_view text, const std::string& path);

// The seed's search: the explicit -f path (returned even if missing, so the caller
// reports it), else ./repmgr.conf, else repmgr.conf beside the binary, else
// /etc/repmgr.conf; nullopt when none exists.
std::optional<std::string> find_config_file(const std::string& explicit_path,
                                            const std::string& binary_dir);

}  // namespace pgrm
