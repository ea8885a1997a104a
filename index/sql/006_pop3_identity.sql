-- Schema version 6: a POP3 identity describes the message it names, and
-- names only a message on the server.
--
-- A server may give a UIDL (or the fetcher's header-hash identity) that
-- once named a message to a new message later. pop3_uidls therefore keeps
-- only identities that the last listing showed (the fetcher forgets the
-- others, and forgets a message's identity once its deletion is
-- confirmed), and records what the identity named when it was stored: the
-- size the server listed and a hash of the stored header. A listed message
-- whose size or header differs from its identity's record is a new message
-- and is downloaded (see sync/pop3, "Fetching").
ALTER TABLE pop3_uidls ADD COLUMN rfc822_size INTEGER NOT NULL DEFAULT 0; -- LIST size when stored, 0 unknown
ALTER TABLE pop3_uidls ADD COLUMN header_sha256 BLOB;                     -- see sync/pop3; NULL unknown

UPDATE pop3_uidls SET rfc822_size = coalesce(
	(SELECT m.rfc822_size FROM messages m WHERE m.id = pop3_uidls.message_id), 0);

-- An identity whose message was deleted on the server names nothing: the
-- next message that gets it is new.
DELETE FROM pop3_uidls WHERE deleted_at != 0;
ALTER TABLE pop3_uidls DROP COLUMN deleted_at;
