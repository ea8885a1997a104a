-- Schema version 10: the outbox, mail queued to leave through an
-- account's SMTP relay (see outbox.go, sync/outbox).
--
-- A message's file is under <root>/.postfach/outbox/cur/ (a Maildir of
-- its own, written through the door's delivery sequence: the file is
-- durable before its row commits). These rows cannot be rebuilt: a lost
-- index loses the queue (the files stay, for a person to resend).
--
-- state: 'queued' (waiting for next_attempt), 'sending' (written ahead of
-- MAIL FROM: a row found so by the next sender was interrupted, and its
-- pending recipients may have the message already: interrupted counts
-- those), 'failed' (every recipient done, one or more failed; listed
-- until deleted), 'sent' (every recipient took it; the row goes once
-- its follow-ups are done).
-- followups: local messages still to file: 1 the copy to Sent, 2 the
-- failure notice, 4 the warning notice (see outbox.go).
CREATE TABLE IF NOT EXISTS outbox (
	id           INTEGER PRIMARY KEY,
	account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	mail_from    TEXT NOT NULL,
	key          TEXT NOT NULL UNIQUE,       -- Maildir key of the file
	file         TEXT NOT NULL,              -- "cur/<name>", relative to the outbox directory
	size         INTEGER NOT NULL,           -- bytes on the wire (CRLF)
	message_id   TEXT NOT NULL DEFAULT '',
	subject      TEXT NOT NULL DEFAULT '',
	queued       INTEGER NOT NULL,           -- unix seconds
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,           -- unix seconds
	last_reply   TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL DEFAULT 'queued',
	interrupted  INTEGER NOT NULL DEFAULT 0, -- sends found cut off by a crash (possible duplicates)
	warned       INTEGER NOT NULL DEFAULT 0, -- the warning notice was due (1)
	conn_failed  INTEGER NOT NULL DEFAULT 0, -- the last attempt failed for want of a relay (1): tried again on a nudge
	followups    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (account_id, state, next_attempt);

-- The envelope's recipients, in RCPT TO order. state: 'pending', 'sent',
-- 'failed'; reply: the relay's last reply for this recipient (one line).
CREATE TABLE IF NOT EXISTS outbox_rcpts (
	outbox_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
	seq       INTEGER NOT NULL,
	addr      TEXT NOT NULL,
	state     TEXT NOT NULL DEFAULT 'pending',
	reply     TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (outbox_id, seq)
);
