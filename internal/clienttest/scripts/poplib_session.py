"""A POP3 client's session through Python's poplib, run by clienttest.

Reads its target as JSON on stdin ({"host", "port", "user", "pass", "tls":
"none"|"starttls"|"implicit", "cafile", "dele": [message numbers to delete
before QUIT]}) and writes JSON on stdout: {"capa", "stat", "list", "uidl",
"messages": [{"num", "uidl", "size", "raw" (base64, CRLF line ends),
"top0" (base64: TOP n 0)}], "quit"}.
"""
import base64
import json
import poplib
import ssl
import sys


def main():
    c = json.load(sys.stdin)
    ctx = None
    if c["tls"] != "none":
        ctx = ssl.create_default_context(cafile=c.get("cafile") or None)
    if c["tls"] == "implicit":
        p = poplib.POP3_SSL(c["host"], c["port"], context=ctx, timeout=10)
    else:
        p = poplib.POP3(c["host"], c["port"], timeout=10)
        if c["tls"] == "starttls":
            p.stls(context=ctx)
    out = {}
    try:
        out["capa"] = sorted(p.capa().keys())
    except poplib.error_proto as e:
        out["capa"] = ["<error %s>" % e]
    p.user(c["user"])
    p.pass_(c["pass"])
    out["stat"] = list(p.stat())
    out["list"] = [l.decode() for l in p.list()[1]]
    uidls = {}
    for l in p.uidl()[1]:
        n, u = l.decode().split(" ", 1)
        uidls[int(n)] = u
    out["uidl"] = [uidls[n] for n in sorted(uidls)]
    msgs = []
    for l in out["list"]:
        n, size = (int(x) for x in l.split())
        lines = p.retr(n)[1]
        top = p.top(n, 0)[1]
        msgs.append({"num": n, "uidl": uidls.get(n, ""), "size": size,
                     "raw": base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode(),
                     "top0": base64.b64encode(b"\r\n".join(top) + b"\r\n").decode()})
    out["messages"] = msgs
    for n in c.get("dele") or []:
        p.dele(n)
    out["quit"] = p.quit().decode()
    json.dump(out, sys.stdout)


main()
