"""The local labelling page: Starlette, one token, images by id only.

Every request must carry the session's token (`?token=` or the
`X-Prefcli-Token` header), compared in constant time; without it the answer
is 403 and nothing else. Images are served only as `/image/<id>` where
`<id>` is the sha256 content id of a pool image: the id is looked up in the
pool, so no path from the client is ever opened. Pages carry
`Referrer-Policy: no-referrer` (the token stays out of other sites' logs) and
a content security policy allowing only this origin.
"""

from __future__ import annotations

import hmac
import re
from importlib import resources
from pathlib import Path
from typing import Any

from prefcli.errors import PrefcliError
from prefcli.label.session import LabelSession

ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MEDIA = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'",
}


def _static(name: str) -> str:
    return resources.files("prefcli.label").joinpath("static", name).read_text(encoding="utf-8")


def make_app(session: LabelSession, token: str):
    """The ASGI app serving `session`, refusing any request without `token`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    def allowed(request: Request) -> bool:
        given = request.query_params.get("token") or request.headers.get("x-prefcli-token") or ""
        return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))

    def refuse() -> Response:
        return PlainTextResponse(
            "missing or wrong token: open the URL that prefcli label printed", 403, headers=HEADERS
        )

    def page(name: str, media: str):
        async def endpoint(request: Request) -> Response:
            if not allowed(request):
                return refuse()
            # The page's own links carry the token too (it is hex: nothing to escape).
            return Response(_static(name).replace("{{token}}", token), media_type=media, headers=HEADERS)

        return endpoint

    async def state(request: Request) -> Response:
        if not allowed(request):
            return refuse()
        return JSONResponse(session.view(), headers=HEADERS)

    async def _body(request: Request) -> dict[str, Any]:
        from prefcli.errors import DataError
        from prefcli.jsonio import loads

        try:  # a client's body: bounded in depth like every JSON prefcli reads
            data = loads(await request.body() or b"{}", "request body")
        except DataError:
            data = None
        return data if isinstance(data, dict) else {}

    async def answer(request: Request) -> Response:
        if not allowed(request):
            return refuse()
        from prefcli.label.session import StalePair

        body = await _body(request)
        rt = body.get("rt_ms")
        try:
            view = session.answer(
                str(body.get("pair", "")),
                str(body.get("choice", "")),
                str(body.get("comment") or ""),
                float(rt) if isinstance(rt, (int, float)) and rt >= 0 else None,
            )
        except StalePair as e:
            v = session.view()
            v["message"] = str(e)
            return JSONResponse(v, 409, headers=HEADERS)
        except PrefcliError as e:
            return JSONResponse({"error": str(e)}, 400, headers=HEADERS)
        return JSONResponse(view, headers=HEADERS)

    async def undo(request: Request) -> Response:
        if not allowed(request):
            return refuse()
        return JSONResponse(session.undo(), headers=HEADERS)

    async def image(request: Request) -> Response:
        if not allowed(request):
            return refuse()
        image_id = request.path_params["image_id"]
        im = session.pool.by_id.get(image_id) if ID_PATTERN.match(image_id) else None
        if im is None:
            return PlainTextResponse("no such image in the pool", 404, headers=HEADERS)
        from prefcli import images
        from prefcli.errors import ImageError

        try:
            data = images.read_image_file(im.path)
        except ImageError as e:
            return PlainTextResponse(f"cannot read the image: {getattr(e, 'reason', e)}", 410, headers=HEADERS)
        return Response(
            data,
            media_type=MEDIA.get(Path(im.path).suffix.lower(), "application/octet-stream"),
            headers={**HEADERS, "Cache-Control": "private, max-age=3600"},
        )

    routes = [
        Route("/", page("page.html", "text/html; charset=utf-8")),
        Route("/page.js", page("page.js", "text/javascript; charset=utf-8")),
        Route("/page.css", page("page.css", "text/css; charset=utf-8")),
        Route("/api/state", state),
        Route("/api/answer", answer, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
        Route("/image/{image_id}", image),
    ]
    return Starlette(routes=routes)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int):
    """A listening socket on host:port (port 0: a free one), so the URL can be printed before serving."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise PrefcliError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise PrefcliError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def url_of(sock, host: str, token: str) -> str:
    port = sock.getsockname()[1]
    shown = host if ":" not in host else f"[{host}]"
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
    return f"http://{shown}:{port}/?token={token}"


def server_for(app):
    """A uvicorn server for `app` (quiet: the page is the interface)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))


def serve(app, sock) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server_for(app).run(sockets=[sock])
