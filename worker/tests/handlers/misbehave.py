"""A handler written against the raw protocol (no SDK) that misbehaves on
purpose, for worker/tests/handler_faults.rs.

    python3 misbehave.py MODE MARKER

The first process to start (the one that creates MARKER) misbehaves as MODE
says; processes started after it serve `t.echo` and `t.pid` correctly, so a
test can see the worker recover.
"""

import json
import os
import sys
import time

mode, marker = sys.argv[1], sys.argv[2]
try:
    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    first = True
except FileExistsError:
    first = False
bad = mode if first else "ok"

if bad == "exit":
    sys.stderr.write("cannot start: missing configuration\n")
    sys.exit(3)

out = os.fdopen(4, "wb", buffering=0)
inp = os.fdopen(3, "rb")


def send(msg):
    out.write((json.dumps(msg) + "\n").encode())


functions = [] if bad == "empty-hello" else ["t.echo", "t.pid"]
send({"type": "hello", "protocol": 1, "functions": functions})
if bad == "empty-hello":
    time.sleep(60)

for line in inp:
    call = json.loads(line)
    if call["type"] != "call":
        continue
    cid = call["id"]
    print("stdout of call %d: not the protocol" % cid, flush=True)
    sys.stderr.write("working on call %d\n" % cid)
    sys.stderr.flush()
    if bad == "garbage":
        out.write(b"Traceback? no, just garbage\n")
    elif bad == "unknown-id":
        send({"type": "result", "id": cid + 1000, "value": 1})
    elif bad == "huge":
        out.write(b'{"type":"result","id":%d,"value":"' % cid + b"x" * (9 * 1024 * 1024) + b'"}\n')
    elif bad == "crash":
        os._exit(9)
    elif bad == "hang":
        time.sleep(3600)
    elif call["function"] == "t.pid":
        send({"type": "result", "id": cid, "value": os.getpid()})
    else:
        send({"type": "result", "id": cid, "value": call["args"]})
