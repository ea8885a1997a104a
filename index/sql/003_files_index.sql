-- Schema version 3: a covering index for the Maildir comparison every run
-- makes (MessageFiles: key and file name of each message of a folder), so
-- it reads the index alone instead of one table row per message.
CREATE INDEX messages_folder_key_file ON messages (folder_id, key, file);
