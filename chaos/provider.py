"""The outside world the notification sender talks to during a chaos run: a push provider's
webhook (an HTTP server on loopback that keeps every Idempotency-Key it was sent) and the
e-mails (Django's file backend, one file per message, each with its Message-ID). A sender killed
between sending and recording sends again under the same key: these count how often."""

from __future__ import annotations

import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MESSAGE_ID = re.compile(rb"^Message-ID: <([^@>]+)@", re.MULTILINE)


class PushProvider:
    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        lock = threading.Lock()
        keys = self.keys

        class Endpoint(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    keys[self.headers.get("Idempotency-Key", "")] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/push"
        self.thread = threading.Thread(target=self.server.serve_forever, name="chaos-push-provider", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def emailed_keys(mail_dir: Path) -> Counter[str]:
    """How many e-mails went out under each idempotency key (their Message-ID)."""
    keys: Counter[str] = Counter()
    if mail_dir.is_dir():
        for path in mail_dir.iterdir():
            keys.update(key.decode() for key in MESSAGE_ID.findall(path.read_bytes()))
    return keys
