-- pgrm cluster metadata, version 2: the primary's daemon records when it last saw its
-- server healthy, so operators and other daemons can tell a live primary.
ALTER TABLE repl_nodes ADD COLUMN last_seen timestamptz;
