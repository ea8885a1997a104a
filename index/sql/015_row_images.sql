-- Schema version 15: a sync compares a changed folder's listing with a
-- compact image of its rows (ReadTx.RowImage, rowimage.go) instead of
-- reading every row.
--
-- row_images: per folder, what its rows' ids, UIDs and file names were
-- as of a local MODSEQ (folders.local_modseq), packed (see rowimage.go).
-- The rows changed since come from messages_folder_modseq.
--
-- That needs every change to what the image holds (a row's key, file,
-- UID or folder) to give the row a MODSEQ greater than any read before.
-- Flag and keyword changes, additions and moves do (the Tx mutators);
-- the trigger covers the rest (a ,U= tag renamed in, a UID recorded
-- after an upload, UIDs cleared), which local clients do not see as
-- changes: they only get a MODSEQ that moved without one. A statement
-- that leaves the row's MODSEQ as it was is one of those (or one that
-- changes a row twice in a transaction, which then costs one more
-- MODSEQ); a move always gives the row the destination's next one.
--
-- IF NOT EXISTS: as in 008, for an index set back to an older version.
CREATE TABLE IF NOT EXISTS row_images (
	folder_id INTEGER PRIMARY KEY REFERENCES folders(id) ON DELETE CASCADE,
	modseq    INTEGER NOT NULL,
	image     BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS messages_image_modseq
AFTER UPDATE OF key, file, uid ON messages
WHEN NEW.modseq = OLD.modseq AND NEW.folder_id = OLD.folder_id
	AND (NEW.key IS NOT OLD.key OR NEW.file IS NOT OLD.file OR NEW.uid IS NOT OLD.uid)
BEGIN
	UPDATE folders SET local_modseq = local_modseq + 1 WHERE id = NEW.folder_id;
	UPDATE messages SET modseq = (SELECT local_modseq FROM folders WHERE id = NEW.folder_id) WHERE id = NEW.id;
END;
