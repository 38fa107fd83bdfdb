#!/usr/bin/env python3
"""rawhttp.py: what curl will not do, for test_serve.sh.

  rawhttp.py send PORT [--shut] [--head]  sends stdin as it is and prints the
      reply; --shut half-closes (shutdown(SHUT_WR)) after sending, as nc -N
      does; --head sends only up to the blank line after the headers and
      prints what comes back within 5 s, the body never sent.
  rawhttp.py conns PORT N  opens N idle connections at once and prints how
      many the server closed within 1 s.
  rawhttp.py trickle PORT S  sends a header a byte every 0.2 s for at most S
      seconds and prints when the server closed the connection ("open": never).
  rawhttp.py idle PORT S  sends GET /health, waits S seconds on the kept-alive
      connection, sends it again and prints both status lines.
"""
import socket
import sys
import time


def read_all(s, limit_s):
    s.settimeout(limit_s)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def send(port, args):
    data = sys.stdin.buffer.read()
    if "--head" in args:
        data = data[: data.index(b"\r\n\r\n") + 4]
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    if "--shut" in args:
        s.shutdown(socket.SHUT_WR)
    sys.stdout.write(read_all(s, 5 if "--head" in args else 20).decode("latin-1"))


def conns(port, n):
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    time.sleep(1)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            closed += s.recv(1) == b""
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    print(closed)


def trickle(port, limit):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    t = time.time()
    try:
        while time.time() - t < limit:
            s.sendall(b"a")
            time.sleep(0.2)
        print("open")
    except OSError:
        print("%.1f" % (time.time() - t))


def idle(port, pause):
    s = socket.create_connection(("127.0.0.1", port))
    req = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
    out = []
    for i in range(2):
        if i:
            time.sleep(pause)
        s.sendall(req)
        s.settimeout(5)
        try:
            reply = s.recv(65536)
        except OSError:
            reply = b""
        out.append(reply.split(b"\r\n")[0].decode("latin-1") or "closed")
    print(" / ".join(out))


if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "send":
        send(port, sys.argv[3:])
    elif cmd == "conns":
        conns(port, int(sys.argv[3]))
    elif cmd == "trickle":
        trickle(port, float(sys.argv[3]))
    else:
        idle(port, float(sys.argv[3]))
