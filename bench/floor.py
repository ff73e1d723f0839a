"""Reference floor for bench/run.sh: COUNT fresh-connection HTTP/1.1 GETs,
one at a time, from a plain blocking socket (no HTTP library, no runtime).
Prints this process's user and system CPU per request. Loopback only.

    python3 bench/floor.py PORT COUNT
"""
import resource
import socket
import sys
import time

port, count = int(sys.argv[1]), int(sys.argv[2])
request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.monotonic()
ok = 0
for _ in range(count):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        ok += reply.startswith(b"HTTP/1.1 200")
after = resource.getrusage(resource.RUSAGE_SELF)
user = (after.ru_utime - before.ru_utime) * 1e6 / count
system = (after.ru_stime - before.ru_stime) * 1e6 / count
print(
    f"sent={count} ok={ok} secs={time.monotonic() - start:.2f} "
    f"user_us_per_req={user:.1f} sys_us_per_req={system:.1f} cpu_us_per_req={user + system:.1f}"
)
