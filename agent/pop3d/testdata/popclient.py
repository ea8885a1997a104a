#!/usr/bin/env python3
"""A POP3 session with Python's poplib, for pop3d's tests.

Reads one session per line on stdin, a JSON array:
  [HOST, PORT, LOGIN, PASSWORD, MODE, CAFILE, DELE, END]
  MODE   plain | stls | ssl | authplain (AUTH PLAIN in the clear)
  CAFILE the certificate to trust ("" for none)
  DELE   comma-separated message numbers to delete ("" for none)
  END    quit | drop (close the socket without QUIT)

and answers each with one line, a JSON object: the greeting, CAPA, STAT,
LIST, UIDL, each message (RETR) and its TOP 0 in base64, keyed by number,
and QUIT's reply; or {"error": ...}. One process serves a whole test
(starting Python is slow on a loaded machine).
"""
import base64
import json
import poplib
import ssl
import sys


def session(host, port, login, password, mode, cafile, dele, end):
    port = int(port)
    ctx = None
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)

    if mode == "ssl":
        p = poplib.POP3_SSL(host, port, context=ctx, timeout=30)
    else:
        p = poplib.POP3(host, port, timeout=30)
    out = {"welcome": p.getwelcome().decode()}
    out["capa_before"] = sorted(p.capa().keys())
    if mode == "stls":
        out["stls"] = p.stls(context=ctx).decode()
        out["capa_after"] = sorted(p.capa().keys())
    if mode == "authplain":
        token = base64.b64encode(b"\0" + login.encode() + b"\0" + password.encode()).decode()
        out["login"] = p._shortcmd("AUTH PLAIN " + token).decode()
    else:
        out["user"] = p.user(login).decode()
        out["login"] = p.pass_(password).decode()
    out["stat"] = list(p.stat())
    resp, lines, _ = p.list()
    out["list"] = [l.decode() for l in lines]
    resp, lines, _ = p.uidl()
    out["uidl"] = [l.decode() for l in lines]
    msgs, tops = {}, {}
    for l in out["list"]:
        n = int(l.split()[0])
        resp, lines, octets = p.retr(n)
        msgs[n] = base64.b64encode(b"".join(x + b"\r\n" for x in lines)).decode()
        resp, lines, octets = p.top(n, 0)
        tops[n] = base64.b64encode(b"".join(x + b"\r\n" for x in lines)).decode()
    out["msgs"], out["tops"] = msgs, tops
    for n in filter(None, dele.split(",")):
        p.dele(int(n))
    if end == "quit":
        out["quit"] = p.quit().decode()
    else:
        p.file.close()
        p.sock.close()
    return out


for line in sys.stdin:
    try:
        out = session(*json.loads(line))
    except Exception as e:  # reported to the test, which fails
        out = {"error": repr(e)}
    print(json.dumps(out), flush=True)
