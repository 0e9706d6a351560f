"""The HTTP side of `batchflow serve`: a Starlette (ASGI) application.

    GET  /                              "OK" (text/plain), no auth: availability checks;
                                        with ?token=... the page (static/index.html), which
                                        passes the token on to the API
    GET  /static/...                    the page's script and style
    GET  /api/runs                      the runs served
    GET  /api/runs/{id}/graph?since=T   what changed after revision T (docs/serve.md)
    GET  /api/runs/{id}/stream?client=C&since=T   the same deltas as Server-Sent Events
    POST /api/runs/{id}/control         a control message (DISCARD, FOCUS, ...) to a live run
    GET  /d/{secret}/runs/{id}/journal|turtle      downloads behind a secret path
    GET  /d/{secret}/{name}/...         a directory mounted with `mount_directory`

Every /api call needs `Authorization: Bearer TOKEN`.  Errors are JSON
bodies {"error": "..."} with 400, 401, 404, 409, 503; never a traceback.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import pathlib
import tempfile

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import (FileResponse, JSONResponse, PlainTextResponse, Response,
                                 StreamingResponse)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .hub import QUEUE_MAX, Hub, dumps

STATIC = pathlib.Path(__file__).resolve().parent / "static"
KEEPALIVE_S = 15
MAX_SINCE_DIGITS = 20
CONTROL_BODY_MAX = 64 << 10


def download_secret(token: str) -> str:
    """The secret path component of the download URLs, derived from the API token
    (so `serve --print-urls` can list the URLs of a server started with the same
    token file) and not revealing it."""
    return hmac.new(token.encode(), b"batchflow downloads", "sha256").hexdigest()[:32]


def error(status, message):
    return JSONResponse({"error": message}, status_code=status)


class BearerAuth:
    """ASGI middleware: /api/ needs the bearer token (compared in constant time)."""

    def __init__(self, app, token):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            got = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                resp = JSONResponse({"error": "missing or bad bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def parse_since(request, graph):
    raw = request.query_params.get("since", "0")
    if not raw.isdigit() or len(raw) > MAX_SINCE_DIGITS:
        raise HTTPException(400, "since must be a revision: a non-negative integer")
    since = int(raw)
    if since > graph.rev:
        raise HTTPException(400, f"since={since} is ahead of this run (its last revision is "
                                 f"{graph.rev}); ask since=0 for the whole graph")
    return since


class ServeApp:
    """The application and what it serves; `app` is the ASGI callable."""

    def __init__(self, sources, token, mounts=None, queue_max=QUEUE_MAX, agent_runs=None):
        self.hub = Hub(sources, queue_max)
        self.agent_runs = agent_runs     # agentlink.AgentRuns: the agent's live recordings
        self.token = token
        self.secret = download_secret(token)
        self.mounts = dict(mounts or {})
        self._turtles = {}
        self._tmp = None
        routes = [
            Route("/", self.ok),
            Route("/api/runs", self.runs),
            Route("/api/runs/{rid}/graph", self.graph),
            Route("/api/runs/{rid}/stream", self.stream),
            Route("/api/runs/{rid}/control", self.control, methods=["POST"]),
            Route("/d/{secret}/runs/{rid}/{what}", self.download),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ]
        for name, directory in self.mounts.items():
            routes.append(Mount(f"/d/{self.secret}/{name}", app=StaticFiles(directory=directory)))
        self.app = Starlette(routes=routes, middleware=[Middleware(BearerAuth, token=token)],
                             exception_handlers={HTTPException: self._http_error,
                                                 Exception: self._crash},
                             lifespan=self._lifespan)

    def mount_directory(self, name, directory):
        """Serves `directory` under /d/SECRET/NAME/ (the historian's CSV and tar.gz
        day files); call before the server starts."""
        self.mounts[name] = directory
        self.app.router.routes.append(
            Mount(f"/d/{self.secret}/{name}", app=StaticFiles(directory=directory)))

    def urls(self, base):
        """The download URLs (for --print-urls)."""
        out = []
        for rid, src in self.hub.runs.items():
            out.append(f"{base}/d/{self.secret}/runs/{rid}/journal" if src.kind == "journal"
                       else f"{base}/d/{self.secret}/runs/{rid}/turtle")
            if src.kind == "journal":
                out.append(f"{base}/d/{self.secret}/runs/{rid}/turtle")
        for name in self.mounts:
            out.append(f"{base}/d/{self.secret}/{name}/")
        return out

    # --- lifecycle ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        tasks = [asyncio.create_task(self.hub.pump())]
        if self.agent_runs is not None:
            tasks.append(asyncio.create_task(self.agent_runs.run(self.hub)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()

    async def _http_error(self, request, exc):
        return error(exc.status_code, exc.detail)

    async def _crash(self, request, exc):
        return error(500, f"internal error: {type(exc).__name__}")

    def _run(self, request):
        rid = request.path_params["rid"]
        src = self.hub.runs.get(rid)
        if src is None:
            raise HTTPException(404, f"no run {rid!r}")
        return rid, src

    # --- routes ------------------------------------------------------------

    async def ok(self, request):
        if "token" in request.query_params:
            # The page itself holds no data: the token is checked by each API call it makes.
            return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        return PlainTextResponse("OK")

    async def runs(self, request):
        return JSONResponse({"runs": [self.hub.run_summary(rid) for rid in self.hub.runs]})

    async def graph(self, request):
        rid, src = self._run(request)
        since = parse_since(request, src.graph)
        delta = src.graph.since(since)
        delta["type"] = "delta"
        delta["live"] = src.live
        return Response(dumps(delta), media_type="application/json")

    async def stream(self, request):
        rid, src = self._run(request)
        since = request.query_params.get("since") or request.headers.get("last-event-id") or "0"
        if not since.isdigit() or len(since) > MAX_SINCE_DIGITS or int(since) > src.graph.rev:
            raise HTTPException(400, "since must be a revision this run has reached")
        cid = request.query_params.get("client") or os.urandom(8).hex()
        if len(cid) > 64:
            raise HTTPException(400, "client id longer than 64 characters")
        session = self.hub.session(cid, rid)
        if session is None:
            raise HTTPException(503, "too many client sessions")
        # The snapshot and the queue meet exactly: nothing runs between these lines.
        first = src.graph.since(int(since))
        first["type"] = "delta"
        session.queue.clear()
        session.waiting_resync = False
        session.delivered = src.graph.rev
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no",
                   "X-Batchflow-Client": cid}
        return StreamingResponse(self._events(request, session, src, first),
                                 media_type="text/event-stream", headers=headers)

    async def _events(self, request, session, src, first):
        session.connected += 1
        try:
            yield f"event: delta\nid: {first['until']}\ndata: {dumps(first)}\n\n"
            while True:
                item = session.take()
                if item is None:
                    if not src.live and session.delivered >= src.graph.rev:
                        yield f"event: end\ndata: {dumps({'type': 'end', 'until': src.graph.rev})}\n\n"
                        return
                    try:
                        await asyncio.wait_for(session.wakeup.wait(), KEEPALIVE_S)
                    except asyncio.TimeoutError:
                        yield ": keepalive\n\n"
                    continue
                name, rev, data = item
                if name == "delta":
                    yield f"event: delta\nid: {rev}\ndata: {data}\n\n"
                else:
                    yield f"event: resync\ndata: {data}\n\n"
        finally:
            session.connected -= 1

    async def control(self, request):
        rid, src = self._run(request)
        if not src.steerable:
            raise HTTPException(409, "this run cannot be steered (finished, or a live recording "
                                     "without a control path)")
        body = await request.body()
        if len(body) > CONTROL_BODY_MAX:
            raise HTTPException(400, "control message too long")
        try:
            msg = json.loads(body)
        except ValueError as exc:
            raise HTTPException(400, f"bad JSON: {exc}") from None
        if not isinstance(msg, dict):
            raise HTTPException(400, "a control message is a JSON object")
        reply = await src.control.send(msg)
        return JSONResponse(reply, status_code=200 if reply.get("ok") else 400)

    async def download(self, request):
        if not hmac.compare_digest(request.path_params["secret"], self.secret):
            raise HTTPException(404, "not found")
        rid, src = self._run(request)
        what = request.path_params["what"]
        if what == "journal" and src.kind in ("journal", "agent"):
            name, fd = src.download()
            return StreamingResponse(_read_fd(fd), media_type="application/octet-stream",
                                     headers=_attachment(name))
        if what == "turtle" and src.kind == "turtle":
            name, fd = src.download()
            return StreamingResponse(_read_fd(fd), media_type="text/turtle",
                                     headers=_attachment(name))
        if what == "turtle" and src.kind in ("journal", "agent"):
            if src.live:
                raise HTTPException(409, "the recording is still running: its Turtle "
                                         "exists once it has ended")
            path = await asyncio.to_thread(self._turtle_of, rid, src)
            return FileResponse(path, media_type="text/turtle",
                                filename=os.path.basename(src.name) + ".ttl")
        raise HTTPException(404, f"run {rid} has no {what}")

    def _turtle_of(self, rid, src):
        """The Turtle of a finished journal, written once into a private directory."""
        if rid not in self._turtles:
            from .journalfd import turtle_of_journal_fd
            if self._tmp is None:
                self._tmp = tempfile.mkdtemp(prefix="batchflow-serve-")    # 0700
            path = os.path.join(self._tmp, f"run-{rid}.ttl")
            turtle_of_journal_fd(src.fd, path)
            self._turtles[rid] = path
        return self._turtles[rid]


def _attachment(name):
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "download"
    return {"Content-Disposition": f'attachment; filename="{safe}"'}


async def _read_fd(fd, chunk=1 << 16):
    offset = 0
    while True:
        data = os.pread(fd, chunk, offset)
        if not data:
            return
        offset += len(data)
        yield data
