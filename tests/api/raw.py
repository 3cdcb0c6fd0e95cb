"""HTTP as a stranger writes it: raw bytes on a loopback socket, and connections held open."""

from __future__ import annotations

import socket

__all__ = ["hold_partial_requests", "raw_status"]


def raw_status(port: int, request: bytes, timeout: float = 10) -> int:
    """Send ``request`` exactly as given; return the status of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b"\r\n", 1)[0].split()[1])


def hold_partial_requests(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send the start of a request head and never its end."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        held.append(sock)
    return held
