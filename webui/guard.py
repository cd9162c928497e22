"""The guard in front of every route of the web app (pages, API calls, uploads, queue, files, login).

A page the user visits can reach a studio on 127.0.0.1 too: through DNS rebinding (its own name resolving to
127.0.0.1, which makes the browser send that name as Host) or by sending requests across sites. So:
- a request whose Host is not this studio's (a loopback name or address, the address it was started on, or a name
  given with --allow-host) is refused with 403;
- a request carrying an Origin outside that set, or a browser's cross-site subresource request, is refused with 403;
- no CORS answer is ever given (Gradio's allows any origin, with credentials, when Host is not localhost);
- every response says nosniff (an upload is never run as script or markup) and may not be framed;
- failed logins back off per client and per user (webui/logins.py).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import psutil
from gradio.routes import App, ORJSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request

from webui.logins import TOO_MANY, LoginLimiter, retry_seconds

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
LOGIN_PATHS = frozenset({"/login", "/login/"})
MAX_LOGIN_BODY = 64 * 1024
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
WRONG_HOST = "This studio answers only to its own address; '{host}' is not one of them (see --allow-host)."
FOREIGN_ORIGIN = "Requests from other web sites are refused ({origin})."
CROSS_SITE = "Requests made by other web sites are refused."
LOGIN_TOO_LARGE = "A login is a user name and a password; this request is too large."

Scope = dict[str, Any]


def split_host(text: str, default_port: int | None = None) -> tuple[str | None, int | None]:
    """(host name, port) of a Host header or an origin's host part; (None, None) if it is not one."""
    try:
        parts = urlsplit("//" + text.strip())
        name, port = parts.hostname, parts.port
    except ValueError:
        return None, None
    if not name or parts.username is not None or parts.path or parts.query:
        return None, None
    return name.rstrip(".").lower(), port if port is not None else default_port


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def machine_names() -> set[str]:
    """This machine's own addresses and host name: what a browser on the network uses for a wildcard bind."""
    names = {socket.gethostname().lower()}
    for addresses in psutil.net_if_addrs().values():
        names.update(a.address.split("%")[0].lower() for a in addresses if a.family in (socket.AF_INET,
                                                                                     socket.AF_INET6))
    return names


class HostPolicy:
    """The names this studio answers to, and on which port."""

    def __init__(self, host: str, port: int, allowed: list[str] | None = None):
        self.port = port
        self.names = {n for n in LOOPBACK_NAMES} | {host.strip("[]").lower()}
        if host in WILDCARDS:
            self.names |= machine_names()
        self.extra = {split_host(a)[0] or a.lower() for a in (allowed or []) if a.strip()}  # any port (a proxy)

    def add_host(self, name: str) -> None:
        """A name learnt after start (a share link's host)."""
        self.extra.add(name.lower())

    def _ours(self, name: str | None, port: int | None) -> bool:
        if name is None:
            return False
        if name in self.extra:
            return True
        return (name in self.names or is_loopback(name)) and port in (None, self.port)

    def allows_host(self, header: str | None) -> bool:
        return header is not None and self._ours(*split_host(header))

    def allows_origin(self, origin: str, host_header: str) -> bool:
        """An origin of this studio: the page's own (same scheme-less host and port as Host), or one of its names."""
        if origin.strip().lower() == "null":
            return False
        try:
            parts = urlsplit(origin.strip())
            default = {"http": 80, "https": 443}.get(parts.scheme)
            name, port = parts.hostname, parts.port if parts.port is not None else default
        except ValueError:
            return False
        if default is None or not name or parts.path not in ("", "/"):
            return False
        name = name.rstrip(".").lower()
        host_name, host_port = split_host(host_header, default)
        if (name, port) == (host_name, host_port):
            return True  # same origin; the Host itself was checked already
        return name in self.extra or ((name in self.names or is_loopback(name)) and port == self.port)


class WebGuard:
    """ASGI middleware placed outside all of Gradio's (see ``GuardedApp``)."""

    def __init__(self, app: Any, policy: HostPolicy, limiter: LoginLimiter):
        self.app = app
        self.policy = policy
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self.refusal(scope, headers)
        if refusal:
            await self._refuse(scope, receive, send, 403, refusal)
            return
        send = self._secured(send)
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in LOGIN_PATHS:
            await self._login(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope, headers: Headers) -> str | None:
        """Why a request is refused, or None."""
        host = headers.get("host")
        if not self.policy.allows_host(host):
            return WRONG_HOST.format(host=(host or "")[:100])
        origin = headers.get("origin")
        if origin is not None and not self.policy.allows_origin(origin, host or ""):
            return FOREIGN_ORIGIN.format(origin=origin[:100])
        navigating = headers.get("sec-fetch-mode") == "navigate" and scope.get("method") == "GET"
        if headers.get("sec-fetch-site") == "cross-site" and not navigating:
            return CROSS_SITE  # e.g. <img src> or a form another site's page makes the browser send
        return None

    @staticmethod
    def _secured(send: Any) -> Any:
        async def secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
                message = {**message, "headers": raw}
                response_headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS:
                    response_headers[key.decode()] = value.decode()
            await send(message)

        return secured

    @staticmethod
    async def _refuse(scope: Scope, receive: Any, send: Any, status: int, detail: str,
                      extra: dict[str, str] | None = None) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   *SECURITY_HEADERS, *((k.encode(), v.encode()) for k, v in (extra or {}).items())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _login(self, scope: Scope, receive: Any, send: Any) -> None:
        """Refuse a client or user that must wait; otherwise let Gradio check the password and count the outcome."""
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_LOGIN_BODY:
                await self._refuse(scope, receive, send, 413, LOGIN_TOO_LARGE)
                return

        def replay() -> Any:
            sent = False

            async def again() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return again

        try:
            form = await Request(scope, replay()).form()
            username = str(form.get("username") or "").strip()
            await form.close()
        except Exception:  # noqa: BLE001 - a malformed form is Gradio's to refuse
            username = ""
        client = (scope.get("client") or ("unknown", 0))[0]
        keys = [f"client:{client}"] + ([f"user:{username}"] if username else [])
        wait = self.limiter.retry_after(keys)
        if wait > 0:
            seconds = retry_seconds(wait)
            await self._refuse(scope, receive, send, 429, TOO_MANY.format(seconds=seconds),
                               {"retry-after": str(seconds)})
            return
        status = 0

        async def watch(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, replay(), watch)
        if status == 200:
            self.limiter.succeeded(keys)
        elif 400 <= status < 500:
            self.limiter.failed(keys)


class GuardedApp(App):
    """Gradio's app with ``WebGuard`` outside every middleware Gradio adds (its CORS, compression, errors), so the
    guard sees every request first and every response last. Handed to ``Blocks.launch(_app=...)``, the hook that
    Gradio's own ``gr.Server`` uses; a Gradio without it fails at launch instead of serving unguarded."""

    def __init__(self, policy: HostPolicy, limiter: LoginLimiter | None = None):
        super().__init__(default_response_class=ORJSONResponse)
        self.guard = WebGuard(None, policy, limiter or LoginLimiter())

    def build_middleware_stack(self) -> Any:
        self.guard.app = super().build_middleware_stack()
        return self.guard
