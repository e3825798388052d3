-- pgrm cluster metadata, version 3: planned switchovers. "standby switchover", run on
-- the candidate, inserts a request on the primary; the primary's daemon carries it out.
-- The row replicates, so every daemon sees that the primary's shutdown is planned and
-- does not start a failover while the request is active and before its deadline.
CREATE TABLE switchover (
    id                bigserial   PRIMARY KEY,
    primary_node_id   integer     NOT NULL,
    candidate_node_id integer     NOT NULL,
    -- requested: waiting for the primary's daemon; demoting: the primary is being shut
    -- down and the candidate promoted; done; aborted: the old primary runs as primary
    -- again; failed: neither (detail says what state each node is in).
    state             text        NOT NULL DEFAULT 'requested'
                      CHECK (state IN ('requested', 'demoting', 'done', 'aborted', 'failed')),
    detail            text        NOT NULL DEFAULT '',
    requested_at      timestamptz NOT NULL DEFAULT now(),
    deadline          timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- At most one switchover under way in the cluster.
CREATE UNIQUE INDEX switchover_one_active ON switchover ((true))
    WHERE state IN ('requested', 'demoting');
