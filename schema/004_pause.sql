-- pgrm cluster metadata, version 4: automatic failover paused ("repmgr daemon pause").
-- One row, written on the primary, so every node replicates it and each repmgrd reads it
-- from its own server: while paused, a repmgrd that loses its primary neither promotes
-- nor follows. generation counts the changes: a repmgrd asked to go on despite one pause
-- ("daemon unpause" with no primary to write to) is held again by the next.
CREATE TABLE failover_pause (
    one        boolean     PRIMARY KEY DEFAULT true CHECK (one),
    paused     boolean     NOT NULL DEFAULT false,
    generation bigint      NOT NULL DEFAULT 0,
    node_id    integer,     -- the node the last pause or unpause was run on
    changed_by text,        -- who ran it: user@host, or a repmgrd
    changed_at timestamptz
);
INSERT INTO failover_pause DEFAULT VALUES;
