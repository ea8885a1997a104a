# Two imaplib sessions on INBOX: one idles, the other appends, flags,
# moves and expunges; the idler must hear of each within a second.
import imaplib, json, socket, sys, time

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
A = imaplib.IMAP4(host, port)
A.login(user, password)
A.select("INBOX")
B = imaplib.IMAP4(host, port)
B.login(user, password)
B.select("INBOX")

tag = A._new_tag()
A.send(tag + b" IDLE\r\n")
assert A.readline().startswith(b"+"), "no IDLE continuation"
A.sock.settimeout(1.0)


def heard(expect):
    """Reads the idler's lines until one contains expect; returns it and
    the time it took (at most a second, or the socket times out)."""
    t = time.time()
    while True:
        line = A.readline().decode().strip()
        if expect in line:
            return [line, time.time() - t]


out = {}
B.append("INBOX", None, None, b"Subject: idle\r\n\r\nping\r\n")
out["append"] = heard("EXISTS")
B.store("1", "+FLAGS", r"(\Flagged)")
out["store"] = heard("FETCH")
B.uid("MOVE", "1", "Archive")
out["move"] = heard("EXPUNGE")
B.store("1", "+FLAGS.SILENT", r"(\Deleted)")
B.expunge()
out["expunge"] = heard("EXPUNGE")
A.send(b"DONE\r\n")
A.sock.settimeout(5.0)
out["done"] = A.readline().decode().strip()
out["after"] = A.fetch("1:*", "(UID)")[1] if int(A.select("INBOX")[1][0]) > 0 else []
out["after"] = [x.decode() for x in out["after"]]
A.logout()
B.logout()
print(json.dumps(out))
