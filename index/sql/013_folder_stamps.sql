-- A folder's listing stamp (maildir.Stamp, with the row count and
-- largest row id when it was taken): the listing and the rows were equal
-- then, and stay so while the stamp, count and id are unchanged. Lets a
-- sync of an unchanged folder skip reading its listing and rows.
-- IF NOT EXISTS: as in 008, for an index set back to an older version.
CREATE TABLE IF NOT EXISTS folder_stamps (
	folder_id INTEGER PRIMARY KEY REFERENCES folders(id) ON DELETE CASCADE,
	stamp     TEXT NOT NULL
);
