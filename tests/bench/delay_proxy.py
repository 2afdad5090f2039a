#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that delays every byte by a fixed time in each direction.

Stands in for a database across a network, for benchmarks only: on loopback a round trip costs
tens of microseconds, across a network half a millisecond or more, and a load that waits for
the server between statements pays that for every statement.

    delay_proxy.py --target-port 5432 --delay-ms 0.25 --port-file /tmp/proxy.port

listens on a free port (written to --port-file once listening) and forwards each connection to
127.0.0.1:--target-port. Order is kept; the delay is one way, so a round trip costs twice it,
plus the proxy's own cost (about 0.1 ms per round trip here: measure it, the bench prints it).
Threads and time.sleep rather than asyncio: its timers round up to whole milliseconds.
"""
import argparse
import os
import queue
import socket
import threading
import time


def pump(source, target, delay):
    """Copies source to target, each chunk sent `delay` seconds after it was read."""
    chunks = queue.SimpleQueue()

    def send():
        while True:
            due, data = chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                try:
                    target.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                target.sendall(data)
            except OSError:
                return

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    while True:
        try:
            data = source.recv(1 << 16)
        except OSError:
            data = b""
        chunks.put((time.monotonic() + delay, data))
        if not data:
            break
    sender.join()


def serve(client, target_port, delay):
    try:
        server = socket.create_connection(("127.0.0.1", target_port))
    except OSError:
        client.close()
        return
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=pump, args=(server, client, delay), daemon=True)
    back.start()
    pump(client, server, delay)
    back.join()
    client.close()
    server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0))
    partial = args.port_file + ".tmp"
    with open(partial, "w", encoding="ascii") as out:
        out.write(f"{listener.getsockname()[1]}\n")
    os.replace(partial, args.port_file)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, args.target_port, args.delay_ms / 1000),
                         daemon=True).start()


if __name__ == "__main__":
    main()
