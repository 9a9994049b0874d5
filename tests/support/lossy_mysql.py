"""A TCP proxy in front of MariaDB that can lose the answer to a COMMIT, or to a write
statement (in autocommit, the statement's own commit): the server commits, then the client's
connection dies before the client hears so (MySQL error 2013), as when a network or a server's
connection dies at the worst moment. Everything else passes through.

It reads the MySQL protocol's packet framing only (a 3-byte length and a sequence byte); a
statement is a COM_QUERY packet (0x03) with its text, as PyMySQL sends it (COMMIT included).
"""

from __future__ import annotations

import socket
import threading

from sqlalchemy.engine import make_url

COM_QUERY = 0x03
WRITES = (b"INSERT", b"UPDATE", b"DELETE", b"REPLACE")


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> bytes:
    """One whole packet, header included."""
    header = _read_exactly(sock, 4)
    return header + _read_exactly(sock, int.from_bytes(header[:3], "little"))


class _Link:
    """One client connection and its connection to the server."""

    def __init__(self, owner: LossyMySQLProxy, client: socket.socket) -> None:
        self.owner = owner
        self.client = client
        self.server = socket.create_connection(owner.upstream)
        self.lose_next_answer = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._upstream, daemon=True).start()
        threading.Thread(target=self._downstream, daemon=True).start()

    def close(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _upstream(self) -> None:
        """Client to server; an armed proxy loses the answer to the COMMIT of a transaction
        that wrote (not the COMMITs a driver sends on its own, say when it connects)."""
        wrote = False
        try:
            while True:
                packet = _read_packet(self.client)
                body = packet[4:]
                if body[:1] == bytes([COM_QUERY]):
                    verb = body[1:].lstrip()[:8].upper()
                    if verb.startswith(WRITES):
                        wrote = True
                        if self.owner.take_loss(write=True, statement=body[1:]):
                            self.lose_next_answer.set()
                    elif verb.startswith((b"COMMIT", b"ROLLBACK")):
                        if verb.startswith(b"COMMIT") and wrote and self.owner.take_loss():
                            self.lose_next_answer.set()
                        wrote = False
                self.server.sendall(packet)
        except (OSError, ConnectionError):
            self.close()

    def _downstream(self) -> None:
        """Server to client; the answer to an armed COMMIT is read, then the link cut."""
        try:
            while True:
                packet = _read_packet(self.server)
                if self.lose_next_answer.is_set():
                    self.owner.lost_one()
                    self.close()
                    return
                self.client.sendall(packet)
        except (OSError, ConnectionError):
            self.close()


class LossyMySQLProxy:
    """Listens on 127.0.0.1 (port chosen by the OS) and forwards to `upstream`."""

    def __init__(self, upstream_url: str) -> None:
        parsed = make_url(upstream_url)
        self._upstream_url = parsed
        self.upstream = (parsed.host or "127.0.0.1", parsed.port or 3306)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._losses_wanted = 0
        self._write_losses_wanted = 0
        self._write_losses_matching = b""
        self._down_after_loss = False
        self.down = threading.Event()  # set: every link is cut and connections are refused
        self.lost = 0  # COMMIT answers lost so far
        self._links: list[_Link] = []
        threading.Thread(target=self._accept, name="lossy-mysql", daemon=True).start()

    @property
    def url(self) -> str:
        """The upstream database's URL, pointed at this proxy."""
        port = self._listener.getsockname()[1]
        url = self._upstream_url.set(host="127.0.0.1", port=port)
        return url.render_as_string(hide_password=False)

    def lose_next_commit_answer(self, then_down: bool = False) -> None:
        """The next COMMIT (on any connection) is committed, and its answer lost (then, with
        `then_down`, the database goes away: go_down)."""
        with self._lock:
            self._losses_wanted += 1
            self._down_after_loss = then_down

    def lose_next_write_answer(self, matching: bytes = b"", then_down: bool = False) -> None:
        """The next INSERT, UPDATE or DELETE (on any connection; whose text holds `matching`)
        is run, and its answer lost: with autocommit, it is committed. With `then_down` the
        database then goes away (go_down) as the answer is lost: every retry fails."""
        with self._lock:
            self._write_losses_wanted += 1
            self._write_losses_matching = matching
            self._down_after_loss = then_down

    def go_down(self) -> None:
        """As if the server stopped: every link is cut, and new connections are closed as
        soon as they are accepted, until come_back()."""
        self.down.set()
        with self._lock:
            links, self._links = list(self._links), []
        for link in links:
            link.close()

    def come_back(self) -> None:
        """Accept connections again."""
        self.down.clear()

    def take_loss(self, write: bool = False, statement: bytes = b"") -> bool:
        with self._lock:
            if write:
                if not self._write_losses_wanted or self._write_losses_matching not in statement:
                    return False
                self._write_losses_wanted -= 1
                return True
            if not self._losses_wanted:
                return False
            self._losses_wanted -= 1
            return True

    def lost_one(self) -> None:
        with self._lock:
            self.lost += 1
            down, self._down_after_loss = self._down_after_loss, False
        if down:
            self.go_down()

    def close(self) -> None:
        """Stop listening and cut every link."""
        self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    def __enter__(self) -> LossyMySQLProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            link = _Link(self, client)
            with self._lock:
                self._links.append(link)
            link.start()
