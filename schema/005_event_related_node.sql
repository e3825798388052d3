-- pgrm cluster metadata, version 5: the other node an event concerns (the primary a
-- standby follows, the former primary a promotion replaced, the node an election chose),
-- which event_notification_command receives as %p.
ALTER TABLE events ADD COLUMN related_node_id integer;
