"""The board's safeguards, as `tracker board` has them (docs/security.md), around every request of `tracker ui`:

- a token made at start: the URL that `tracker ui` prints carries it once, and it is then kept in an HttpOnly,
  SameSite=Strict cookie, so a page of another site can neither read it nor send it; requests without it get 401;
- BOARD_PASSWORD (HTTP basic login as BOARD_USER) when set;
- the Host header names this machine's loopback without a login (a DNS-rebinding page names its own host), unless
  the board listens on other addresses, which needs the login;
- writes (anything but GET and HEAD) only from the board's own pages: their Origin is the board's.
"""
from __future__ import annotations

import base64
import binascii
import secrets
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "tracker_ui_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
READS = ("GET", "HEAD")


class Guard:
    """ASGI middleware: the app behind it sees only requests that pass every safeguard."""

    def __init__(self, app: ASGIApp, token: str, user: str = "", password: str = "",
                 any_host: bool = False) -> None:
        self.app = app
        self.token = token
        self.user, self.password = user, password
        self.any_host = any_host  # listening beyond loopback, behind the login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        response = self.refusal(request) or self.token_exchange(request)
        if response is not None:
            return await response(scope, receive, send)
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> PlainTextResponse | None:
        """The response that refuses `request`, or None when it may go on."""
        host = request.headers.get("host", "")
        if not self.any_host and (_host_name(host) not in LOOPBACK_NAMES or "@" in host):
            return PlainTextResponse(f"host {host!r} is not this machine's loopback; open the URL that "
                                     f"`tracker ui` printed", status_code=421)
        if self.password and not self._logged_in(request):
            return PlainTextResponse("log in as BOARD_USER with BOARD_PASSWORD", status_code=401,
                                     headers={"WWW-Authenticate": 'Basic realm="tracker ui"'})
        has_token = secrets.compare_digest(request.cookies.get(COOKIE, ""), self.token)
        offers_token = secrets.compare_digest(request.query_params.get("token", ""), self.token)
        if not (has_token or offers_token):
            return PlainTextResponse("this board needs its token: open the URL that `tracker ui` printed",
                                     status_code=401)
        if request.method not in READS and request.headers.get("origin") != f"{request.url.scheme}://{host}":
            return PlainTextResponse("writes come only from the board's own pages", status_code=403)
        return None

    def token_exchange(self, request: Request) -> RedirectResponse | None:
        """For a URL carrying the token: the same URL without it, with the token set as the cookie."""
        if "token" not in request.query_params:
            return None
        query = urlencode([(key, value) for key, value in parse_qsl(request.url.query) if key != "token"])
        response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response

    def _logged_in(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (scheme.lower() == "basic" and secrets.compare_digest(user.encode(), self.user.encode())
                and secrets.compare_digest(password.encode(), self.password.encode()))


def _host_name(host: str) -> str:
    """The name in a Host header, without its port."""
    return host if host.endswith("]") else host.rsplit(":", 1)[0] if ":" in host else host
