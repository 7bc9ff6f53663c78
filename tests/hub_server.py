"""A stand-in for the Hugging Face Hub on 127.0.0.1: the part of its HTTP API that huggingface_hub uses to create a
model repo and a branch, commit files (preupload + an NDJSON commit, every file inline) and fetch a snapshot
(revision info, the file tree, HEAD/GET of each file with X-Repo-Commit and ETag). Repos live in memory."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml

REPO = r"(?P<repo>[^/]+/[^/]+)"


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo id -> {"private", "refs": {branch: sha}, "commits": {sha: files}}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.refuse_writes = False  # answer every POST 403, as the Hub does a token without write access
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo: str, revision: str = "main") -> dict[str, bytes]:
        entry = self.repos[repo]
        return entry["commits"][entry["refs"].get(revision, revision)]

    def commit(self, repo: str, branch: str, files: dict[str, bytes], deleted: tuple[str, ...] = ()) -> str:
        with self.lock:
            entry = self.repos[repo]
            tree = {**entry["commits"][entry["refs"][branch]], **files}
            for path in deleted:
                tree.pop(path, None)
            sha = hashlib.sha1(json.dumps(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in tree.items()))
                               .encode() + str(len(entry["commits"])).encode()).hexdigest()  # fmt: skip
            entry["commits"][sha] = tree
            entry["refs"][branch] = sha
            return sha

    def create(self, repo: str, private: bool = False) -> bool:
        with self.lock:
            if repo in self.repos:
                return False
            first = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
            sha = hashlib.sha1(repo.encode()).hexdigest()
            self.repos[repo] = {"private": private, "refs": {"main": sha}, "commits": {sha: first}}
            return True


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, value, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        self._send(status, json.dumps({"error": message}).encode(), headers, head)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _tree(self, repo: str, rev: str, head: bool = False) -> tuple[str, dict[str, bytes]] | None:
        entry = self.hub.repos.get(repo)
        if entry is None:
            self._error(404, "RepoNotFound", "Repository not found", head)
            return None
        sha = entry["refs"].get(rev, rev)
        if sha not in entry["commits"]:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
            return None
        return sha, entry["commits"][sha]

    def _route(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((method, path))
        head = method == "HEAD"
        if method == "POST" and self.hub.refuse_writes:
            self._body()
            return self._error(403, "Forbidden", "You don't have the rights to create a model under this namespace")
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(self._body())
            repo = f"{payload['organization']}/{payload['name']}"
            if not self.hub.create(repo, payload.get("visibility") == "private" or bool(payload.get("private"))):
                headers = {"X-Error-Message": "You already created this model repo"}  # and its url, as the Hub says
                return self._json(
                    409, {"error": "You already created this model repo", "url": f"{self.hub.url}/{repo}"}, headers
                )
            return self._json(200, {"url": f"{self.hub.url}/{repo}", "name": repo, "id": repo})
        if method == "POST" and path == "/api/validate-yaml":  # the model card's metadata, before a commit
            try:
                card = json.loads(self._body())["content"]
                yaml.safe_load(card.split("---\n")[1] if card.startswith("---\n") else card)
            except (yaml.YAMLError, IndexError) as e:
                return self._error(400, "BadRequest", f"invalid YAML: {' '.join(str(e).split())}")
            return self._json(200, {"errors": [], "warnings": []})
        if m := re.fullmatch(rf"/api/models/{REPO}/branch/(?P<branch>.+)", path):
            self._body()
            found = self._tree(m["repo"], "main")
            if found is None:
                return None
            refs = self.hub.repos[m["repo"]]["refs"]
            if m["branch"] in refs:
                return self._error(409, "BranchExists", "Reference already exists")
            refs[m["branch"]] = found[0]
            return self._json(200, {})
        if m := re.fullmatch(rf"/api/models/{REPO}/preupload/(?P<rev>.+)", path):
            payload = json.loads(self._body())
            if self._tree(m["repo"], m["rev"]) is None:
                return None
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in payload["files"]]
            return self._json(200, {"files": files, "commitOid": None})
        if m := re.fullmatch(rf"/api/models/{REPO}/commit/(?P<rev>.+)", path):
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            if self._tree(m["repo"], m["rev"]) is None:
                return None
            added = {op["value"]["path"]: base64.b64decode(op["value"]["content"]) for op in lines
                     if op["key"] == "file"}  # fmt: skip
            if any(op["key"] not in ("header", "file", "deletedFile") for op in lines):
                return self._error(400, "BadRequest", "only inline files in this stand-in")
            deleted = tuple(op["value"]["path"] for op in lines if op["key"] == "deletedFile")
            sha = self.hub.commit(m["repo"], m["rev"], added, deleted)
            url = f"{self.hub.url}/{m['repo']}/commit/{sha}"
            return self._json(200, {"commitUrl": url, "commitOid": sha, "pullRequestUrl": None})
        if m := re.fullmatch(rf"/api/models/{REPO}/revision/(?P<rev>.+)", path):
            found = self._tree(m["repo"], m["rev"])
            if found is None:
                return None
            sha, files = found
            siblings = [{"rfilename": name} for name in sorted(files)]
            private = self.hub.repos[m["repo"]]["private"]
            return self._json(200, {"id": m["repo"], "modelId": m["repo"], "sha": sha, "private": private,
                                    "siblings": siblings, "tags": []})  # fmt: skip
        if m := re.fullmatch(rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?P<sub>/.*)?", path):
            found = self._tree(m["repo"], m["rev"])
            if found is None:
                return None
            entries = [{"type": "file", "path": name, "size": len(data), "oid": _blob_id(data)}
                       for name, data in sorted(found[1].items())]  # fmt: skip
            return self._json(200, entries)
        if m := re.fullmatch(rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path):
            found = self._tree(m["repo"], m["rev"], head)
            if found is None:
                return None
            sha, files = found
            if m["file"] not in files:
                return self._error(404, "EntryNotFound", f"{m['file']} does not exist", head)
            data = files[m["file"]]
            headers = {"X-Repo-Commit": sha, "ETag": f'"{_blob_id(data)}"', "Content-Type": "application/octet-stream"}
            return self._send(200, data, headers, head)
        self._body()
        return self._error(404, "NotFound", f"the stand-in does not serve {method} {path}", head)

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")
