# Fetches parts of the first message of INBOX (a large one, see
# TestEndpointLargeMessage) and prints each literal's SHA-256 and size.
import hashlib, imaplib, json, sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
M = imaplib.IMAP4(host, port)
M.login(user, password)
M.select("INBOX")
out = {}
for item in ["BODY.PEEK[]", "BODY.PEEK[TEXT]", "BODY.PEEK[HEADER]", "BODY.PEEK[]<1000000.5000>", "BODY.PEEK[TEXT]<10.100000000>", "BODY.PEEK[1]", "RFC822.SIZE"]:
    typ, data = M.fetch("1", "(" + item + ")")
    if isinstance(data[0], tuple):
        lit = data[0][1]
        out[item] = [hashlib.sha256(lit).hexdigest(), len(lit)]
    else:
        out[item] = data[0].decode()
M.logout()
print(json.dumps(out))
