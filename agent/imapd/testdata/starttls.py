# On loopback LOGIN works in the clear (the session refuses it only from
# another machine); a second connection does STARTTLS first.
import imaplib, json, ssl, sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
M = imaplib.IMAP4(host, port)
out["caps_before"] = sorted(c.decode() if isinstance(c, bytes) else c for c in M.capabilities)
try:
    out["plain_login"] = M.login(user, password)[0]
except imaplib.IMAP4.error as e:
    out["plain_login"] = str(e)
M.logout()
M = imaplib.IMAP4(host, port)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
M.starttls(ssl_context=ctx)
out["login"] = M.login(user, password)[0]
out["select"] = M.select("INBOX")[0]
out["fetch"] = M.fetch("1", "(BODY.PEEK[])")[1][0][1].decode()
M.logout()
print(json.dumps(out))
