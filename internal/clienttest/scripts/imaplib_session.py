"""A mail client's IMAP session through Python's imaplib, run by clienttest.

Reads its target as JSON on stdin ({"host", "port", "user", "pass", "tls":
"none"|"starttls"|"implicit", "cafile", "servername", "eml": base64 of a
message to append}) and writes what every command returned as JSON on
stdout: a list of steps {"name", "kind", "typ", "data"}, where data is
imaplib's list with bytes as {"b": base64} and (prefix, literal) tuples as
{"t": [base64, base64]}. The mailbox must hold clienttest.ClientCorpus:
INBOX with at least 8 messages, Archive with at least 2.
"""
import base64
import imaplib
import json
import socket
import ssl
import sys


def enc(x):
    if x is None:
        return None
    if isinstance(x, tuple):
        return {"t": [base64.b64encode(p).decode() for p in x]}
    if isinstance(x, str):
        x = x.encode()
    return {"b": base64.b64encode(x).decode()}


class Session:
    def __init__(self, cfg):
        self.cfg = cfg
        self.steps = []

    def connect(self):
        c = self.cfg
        ctx = None
        if c["tls"] != "none":
            ctx = ssl.create_default_context(cafile=c.get("cafile") or None)
        if c["tls"] == "implicit":
            m = imaplib.IMAP4_SSL(c["host"], c["port"], ssl_context=ctx, timeout=10)
        else:
            m = imaplib.IMAP4(c["host"], c["port"], timeout=10)
            if c["tls"] == "starttls":
                m.starttls(ssl_context=ctx)
        m.login(c["user"], c["pass"])
        return m

    def rec(self, name, kind, res):
        typ, data = res
        self.steps.append({"name": name, "kind": kind, "typ": typ,
                           "data": [enc(d) for d in data]})

    def untagged(self, m, name, *codes):
        for code in codes:
            typ, data = m.response(code)
            self.steps.append({"name": name + " " + code, "kind": "untagged-" + code,
                               "typ": "", "data": [enc(d) for d in data if d is not None]})

    def run(self):
        m = self.connect()
        self.rec("select INBOX", "number", m.select("INBOX"))
        for spec in ["(UID FLAGS INTERNALDATE RFC822.SIZE)", "(UID ENVELOPE)",
                     "(UID BODYSTRUCTURE)", "(UID BODY.PEEK[])",
                     "(UID BODY.PEEK[HEADER])", "(UID BODY.PEEK[TEXT])",
                     "(UID BODY.PEEK[1])", "(UID BODY.PEEK[1.MIME])",
                     "(UID BODY.PEEK[]<0.100>)", "(UID BODY.PEEK[TEXT]<7.50>)",
                     "(UID BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])"]:
            self.rec("fetch " + spec, "fetch", m.fetch("1:*", spec))
        self.rec("uid fetch 2:3 (FLAGS RFC822.SIZE)", "fetch", m.uid("FETCH", "2:3", "(FLAGS RFC822.SIZE)"))
        self.rec("fetch 1 RFC822", "fetch", m.fetch("1", "(RFC822)"))
        for crit in [("FROM", '"example"'), ("SUBJECT", '"Re:"'),
                     ("HEADER", "Message-ID", '"@"'), ("SINCE", "1-Jan-2022"),
                     ("BEFORE", "1-Jan-2022"), ("SENTSINCE", "1-Jan-2022"),
                     ("SEEN",), ("UNSEEN",), ("FLAGGED",), ("KEYWORD", "$Label1"),
                     ("NOT", "SEEN", "LARGER", "1000"), ("OR", "FLAGGED", "ANSWERED"),
                     ("TEXT", '"forwarded"'), ("BODY", '"Original text"')]:
            self.rec("search " + " ".join(crit), "search", m.search(None, *crit))
        self.rec("uid search SEEN", "search", m.uid("SEARCH", "SEEN"))
        self.rec("store 1 +FLAGS (\\Flagged $Work)", "fetch", m.store("1", "+FLAGS", "(\\Flagged $Work)"))
        self.rec("store 2 -FLAGS (\\Seen)", "fetch", m.store("2", "-FLAGS", "(\\Seen)"))
        self.rec("store 3 FLAGS (\\Answered)", "fetch", m.store("3", "FLAGS", "(\\Answered)"))
        self.rec("uid store 4 +FLAGS.SILENT (\\Seen)", "fetch", m.uid("STORE", "4", "+FLAGS.SILENT", "(\\Seen)"))
        self.rec("search KEYWORD $Work", "search", m.search(None, "KEYWORD", "$Work"))
        eml = base64.b64decode(self.cfg["eml"])
        self.rec("append INBOX", "text", m.append(
            "INBOX", "(\\Seen $Appended)", '"05-Mar-2024 10:20:30 +0100"', eml))
        self.untagged(m, "append INBOX", "EXISTS")
        self.rec("append Archive", "text", m.append(
            "Archive", "()", '"06-Mar-2024 11:00:00 +0000"', eml))
        self.rec("copy 1:2 Archive", "text", m.copy("1:2", "Archive"))
        self.rec("uid copy 3 INBOX", "text", m.uid("COPY", "3", "INBOX"))
        self.untagged(m, "uid copy 3 INBOX", "EXISTS")
        self.rec("move 4 Archive", "text", m._simple_command("MOVE", "4", "Archive"))
        self.untagged(m, "move 4 Archive", "EXPUNGE")
        self.rec("uid move 5 INBOX", "text", m.uid("MOVE", "5", "INBOX"))
        self.untagged(m, "uid move 5 INBOX", "EXPUNGE", "EXISTS")
        self.rec("store 1:2 +FLAGS (\\Deleted)", "fetch", m.store("1:2", "+FLAGS", "(\\Deleted)"))
        self.rec("expunge", "numbers", m.expunge())
        self.idle(m, eml)
        self.rec("fetch all after", "fetch", m.fetch("1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE)"))
        self.rec("status Archive", "list", m.status("Archive", "(MESSAGES UIDNEXT UNSEEN)"))
        self.rec("select Archive", "number", m.select("Archive"))
        self.rec("fetch Archive", "fetch", m.fetch("1:*", "(UID FLAGS BODY.PEEK[])"))
        self.rec("list", "list", m.list())
        m.logout()

    def idle(self, m, eml):
        """IDLE by hand (imaplib of Python 3.11 has none): another
        connection appends a message, the idle one must be told."""
        tag = m._new_tag()
        m.send(tag + b" IDLE\r\n")
        lines = [m.readline()]
        other = self.connect()
        other.append("INBOX", "()", '"07-Mar-2024 12:00:00 +0000"', eml)
        other.logout()
        m.sock.settimeout(5)
        try:
            while b"EXISTS" not in lines[-1]:
                lines.append(m.readline())
                if not lines[-1]:
                    break
        except socket.timeout:
            lines.append(b"<timeout waiting for EXISTS>")
        m.send(b"DONE\r\n")
        while True:
            line = m.readline()
            if line.startswith(tag + b" "):
                line = b"IDLE" + line[len(tag):]  # imaplib's tags are random
            lines.append(line)
            if not line or line.startswith(b"IDLE "):
                break
        m.sock.settimeout(10)
        self.steps.append({"name": "idle", "kind": "lines", "typ": "",
                           "data": [enc(l.rstrip(b"\r\n")) for l in lines]})


def main():
    cfg = json.load(sys.stdin)
    s = Session(cfg)
    try:
        s.run()
    except Exception as e:  # report what ran, and where it stopped
        s.steps.append({"name": "error", "kind": "error", "typ": type(e).__name__,
                        "data": [enc(str(e))]})
    json.dump(s.steps, sys.stdout)


main()
