-- Schema version 14: the outbox's per-pass queries stay proportional to
-- what a pass does, not to the queue (a queue written offline can hold
-- many messages, and every new one nudges a pass).
--
-- outbox_followups: the few rows with copies or notices still to file
-- (OutboxFollowups), without a scan of the account's rows.
-- outbox_waiting: queued rows whose last attempt found no relay
-- (OutboxWaitingForRelay asks whether one exists).
CREATE INDEX IF NOT EXISTS outbox_followups ON outbox (account_id) WHERE followups<>0;
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (account_id, next_attempt) WHERE state='queued' AND conn_failed;
