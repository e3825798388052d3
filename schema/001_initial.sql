-- pgrm cluster metadata, version 1. Runs with search_path set to the cluster's
-- schema (repmgr_<cluster>), so no name here is qualified.

CREATE TABLE repl_nodes (
    id               integer PRIMARY KEY CHECK (id > 0),
    cluster          text        NOT NULL,
    name             text        NOT NULL,
    conninfo         text        NOT NULL,
    type             text        NOT NULL CHECK (type IN ('primary', 'standby')),
    upstream_node_id integer,
    priority         integer     NOT NULL DEFAULT 100 CHECK (priority >= 0),
    active           boolean     NOT NULL DEFAULT true,
    data_directory   text,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per monitoring pass of a standby's daemon.
CREATE TABLE repl_monitor (
    primary_node              integer     NOT NULL,
    standby_node              integer     NOT NULL,
    last_monitor_time         timestamptz NOT NULL,
    last_wal_primary_location pg_lsn      NOT NULL,
    last_wal_standby_location pg_lsn,         -- last received
    last_wal_standby_replayed pg_lsn,         -- last replayed
    replication_lag           bigint      NOT NULL,  -- bytes, primary to received
    apply_lag                 bigint      NOT NULL,  -- bytes, received to replayed
    last_replayed_xact_time   timestamptz
);
CREATE INDEX repl_monitor_standby_time ON repl_monitor (standby_node, last_monitor_time DESC);

-- The seed's view: the latest monitoring row of every standby, lags made readable.
-- time_lag grows while the primary is down, because nothing new is replayed.
CREATE VIEW repl_status AS
SELECT DISTINCT ON (standby_node)
       primary_node,
       standby_node,
       last_monitor_time,
       last_wal_primary_location,
       last_wal_standby_location,
       pg_size_pretty(replication_lag) AS replication_lag,
       pg_size_pretty(apply_lag)       AS apply_lag,
       now() - coalesce(last_replayed_xact_time, last_monitor_time) AS time_lag
  FROM repl_monitor
 ORDER BY standby_node, last_monitor_time DESC;

-- Every state-changing command writes one row.
CREATE TABLE events (
    id              bigserial   PRIMARY KEY,
    node_id         integer     NOT NULL,
    event           text        NOT NULL,
    successful      boolean     NOT NULL,
    event_timestamp timestamptz NOT NULL DEFAULT now(),
    details         text
);
CREATE INDEX events_time ON events (event_timestamp DESC);
