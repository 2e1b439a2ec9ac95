"""A local HTTP server speaking the part of the Hugging Face Hub API that ``huggingface_hub`` uses here (the hub is
unreachable from this machine): ``/api/{datasets,models}/{repo}/revision/{rev}`` (repo info: commit + siblings),
``/api/.../tree/{rev}[/{folder}]`` (file listing with sizes) and ``/{datasets/}{repo}/resolve/{rev}/{file}`` (file
bytes, HEAD and byte ranges, with the ``X-Repo-Commit`` / ``ETag`` headers the client reads). A repo is
``{(repo_type, repo_id): {"commit": sha, "revision": branch, "files": {path: bytes}}}``; unknown repos and
revisions answer 404 with the Hub's error codes. Point the client at it with ``HF_ENDPOINT``. Every request is
recorded in ``log`` (so tests can assert that a second download asks nothing)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

API = re.compile(r"^/api/(datasets|models)/([^/]+/[^/]+)/(revision|tree|paths-info)/(.+?)(?:/(.*))?$")
RESOLVE = re.compile(r"^/(?:(datasets)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class FakeHub:
    def __init__(self, repos: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.repos = repos
        self.log: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _repo(self, kind: str, repo_id: str, rev: str) -> tuple[dict[str, Any] | None, str]:
        repo = self.repos.get((kind, repo_id))
        if repo is None:
            return None, "RepoNotFound"
        if rev not in (repo["revision"], repo["commit"]):
            return None, "RevisionNotFound"
        return repo, ""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def answer(self) -> None:
                path = unquote(urlparse(self.path).path)
                hub.log.append((self.command, path))
                if m := API.match(path):
                    kind, repo_id, what, rev, _ = m.groups()
                    repo, error = hub._repo(kind[:-1], repo_id, rev)
                    if repo is None:
                        return self.send(404, b'{"error": "not found"}', {"X-Error-Code": error})
                    files = repo["files"]
                    body: Any = {"id": repo_id, "sha": repo["commit"], "siblings": [{"rfilename": f} for f in files]}
                    if what == "tree":
                        body = [{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                for f, b in files.items()]  # fmt: skip
                    elif what == "paths-info":
                        body = []
                    return self.send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
                if m := RESOLVE.match(path):
                    kind, repo_id, rev, name = m.groups()
                    repo, error = hub._repo("dataset" if kind else "model", repo_id, rev)
                    if repo is None or name not in repo["files"]:
                        return self.send(404, b"", {"X-Error-Code": error or "EntryNotFound"})
                    data = repo["files"][name]
                    headers = {"X-Repo-Commit": repo["commit"], "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                               "Accept-Ranges": "bytes"}  # fmt: skip
                    if rng := self.headers.get("Range"):
                        start, _, end = rng.removeprefix("bytes=").partition("-")
                        part = data[int(start): (int(end) + 1) if end else None]
                        headers["Content-Range"] = f"bytes {start}-{int(start) + len(part) - 1}/{len(data)}"
                        return self.send(206, part, headers)
                    return self.send(200, data, headers)
                return self.send(404)

            do_GET = do_HEAD = do_POST = answer

        return Handler
