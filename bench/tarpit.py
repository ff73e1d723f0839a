#!/usr/bin/env python3
"""Hostile targets for the fault benchmark, on 127.0.0.1 only.

    tarpit.py PORT MODE

MODE: `hang`  accepts and never answers;
      `drip`  answers one byte of a response every 500 ms;
      `reset` reads the request and resets the connection.
Every connection is dropped after 60 s, and the server holds at most 2,000
at once, so it is bounded whatever lookout does.
"""
import asyncio
import socket
import struct
import sys

MAX_CONNECTIONS = 2000
LIFETIME = 60
open_connections = 0


async def handle(reader, writer, mode):
    global open_connections
    if open_connections >= MAX_CONNECTIONS:
        writer.close()
        return
    open_connections += 1
    try:
        if mode == "hang":
            await asyncio.sleep(LIFETIME)
        elif mode == "drip":
            body = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 100
            for i in range(len(body)):
                writer.write(body[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.5)
        elif mode == "reset":
            await reader.read(1024)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (ConnectionError, OSError):
        pass
    finally:
        open_connections -= 1
        writer.close()


async def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, mode), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
