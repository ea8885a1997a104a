# Drives the local IMAP endpoint with imaplib (see endpoint_test.go):
# every step's result and the untagged responses it brought, as JSON.
import imaplib, json, sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}


def s(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, (list, tuple)):
        return [s(x) for x in v]
    return v


def untagged(M):
    r = {k: s(v) for k, v in M.untagged_responses.items()}
    M.untagged_responses.clear()
    return r


def step(M, name, fn):
    try:
        typ, data = fn()
        out[name] = {"typ": typ, "data": s(data), "untagged": untagged(M)}
    except imaplib.IMAP4.error as e:
        out[name] = {"typ": "ERR", "data": str(e), "untagged": untagged(M)}


M = imaplib.IMAP4(host, port)
step(M, "badlogin", lambda: M.login(user, password + "x"))
step(M, "login", lambda: M.login(user, password))
step(M, "list", lambda: M.list('""', "*"))
step(M, "lsub", lambda: M.lsub('""', "*"))
step(M, "select", lambda: M.select("INBOX"))
step(M, "fetchall", lambda: M.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])"))
step(M, "sections", lambda: M.fetch("2", "(BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[]<5.10> BODY.PEEK[HEADER])"))
step(M, "envelope", lambda: M.fetch("1", "(ENVELOPE BODYSTRUCTURE)"))
step(M, "read", lambda: M.fetch("1", "(BODY[TEXT])"))
step(M, "store", lambda: M.store("1", "+FLAGS", r"(\Flagged $Work)"))
step(M, "storesilent", lambda: M.store("2", "+FLAGS.SILENT", r"(\Answered)"))
step(M, "search_subject", lambda: M.search(None, "SUBJECT", "hello"))
step(M, "search_flagged", lambda: M.search(None, "FLAGGED"))
step(M, "search_unanswered", lambda: M.uid("SEARCH", "UNANSWERED"))
step(M, "search_seq", lambda: M.search(None, "2:*"))
step(M, "append", lambda: M.append("INBOX", r"(\Seen)", '"05-Nov-2026 08:00:00 +0100"', b"Subject: appended\r\n\r\nnew body\r\n"))
step(M, "noop", lambda: M.noop())
step(M, "copy_other", lambda: M.copy("1", "Archive"))
step(M, "copy_self", lambda: M.copy("1", "INBOX"))
step(M, "move", lambda: M.uid("MOVE", "2", "Archive"))
step(M, "delete_mark", lambda: M.store("1", "+FLAGS.SILENT", r"(\Deleted)"))
step(M, "expunge", lambda: M.expunge())
step(M, "after", lambda: M.fetch("1:*", "(UID FLAGS)"))
step(M, "status", lambda: M.status("Archive", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"))
step(M, "copy_missing", lambda: M.copy("1", "Nowhere"))
step(M, "create", lambda: M.create("Projects/2026"))
step(M, "rename", lambda: M.rename("Projects/2026", "Projects/Done"))
step(M, "list2", lambda: M.list('""', "Projects*"))
step(M, "unsubscribe", lambda: M.unsubscribe("Archive"))
step(M, "lsub2", lambda: M.lsub('""', "*"))
step(M, "lsub3", lambda: M.lsub('""', "%"))
step(M, "delete", lambda: M.delete("Projects/Done"))
step(M, "list3", lambda: M.list('""', "%"))
step(M, "examine", lambda: M.select("Archive", readonly=True))
step(M, "ro_store", lambda: M.store("1", "+FLAGS", r"(\Seen)"))
step(M, "ro_fetch", lambda: M.fetch("1", "(BODY[] FLAGS)"))
M.logout()
print(json.dumps(out))
