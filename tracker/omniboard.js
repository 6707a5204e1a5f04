// Omniboard 2.16.1 with the safeguards of `tracker board` and the compose stack, in Omniboard's own process:
//   node omniboard.js OMNIBOARD/dist/start.js
// Settings come from the environment, so that no secret is on a command line, where `ps` shows it to everyone:
//   BOARD_HOST      the address to listen on (default 127.0.0.1); Omniboard itself listens on every address.
//   BOARD_PASSWORD  when set, every request needs HTTP basic auth as BOARD_USER (default sacred). Omniboard's own
//                   login takes the password only on its command line (-u user:password:secret).
// Whatever the settings, no page of another site can use the board:
//   - No CORS headers. Omniboard sends Access-Control-Allow-Origin: * (with PUT and DELETE allowed), which lets any
//     web page its user opens read, change and delete the runs. Its own pages come from the board and need none.
//   - A write (any method but GET, HEAD, OPTIONS) whose Origin is another site is refused, which covers the plain
//     form posts that need no CORS.
//   - Without a login, only requests for a loopback name (localhost, 127.x.x.x, [::1]) are served, so that a page
//     whose own name resolves to 127.0.0.1 (DNS rebinding) is not served as if it were the board.
"use strict";
const crypto = require("crypto");
const http = require("http");
const path = require("path");

const HOST = process.env.BOARD_HOST || "127.0.0.1";
const USER = process.env.BOARD_USER || "sacred";
const PASSWORD = process.env.BOARD_PASSWORD || "";
delete process.env.BOARD_PASSWORD; // neither Omniboard nor anything it starts needs it
const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const LOOPBACK_NAME = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/;

function sameText(a, b) {
  // Digests of equal length, compared in constant time: the time taken tells nothing about the password.
  const digest = (text) => crypto.createHash("sha256").update(text).digest();
  return crypto.timingSafeEqual(digest(a), digest(b));
}

function loggedIn(request) {
  const [scheme, encoded] = (request.headers.authorization || "").split(" ");
  if (scheme !== "Basic" || !encoded) return false;
  const credentials = Buffer.from(encoded, "base64").toString();
  const colon = credentials.indexOf(":"); // the user has no colon; the password may
  if (colon < 0) return false;
  const userMatches = sameText(credentials.slice(0, colon), USER);
  const passwordMatches = sameText(credentials.slice(colon + 1), PASSWORD);
  return userMatches && passwordMatches;
}

function fromAnotherSite(request) {
  const origin = request.headers.origin;
  if (origin === undefined) return false; // not sent by a browser page: curl, scripts
  try {
    return new URL(origin).host !== request.headers.host;
  } catch {
    return true; // "null": a sandboxed page or a file
  }
}

function refusal(request) {
  if (PASSWORD && !loggedIn(request)) return [401, "Log in with BOARD_USER and BOARD_PASSWORD."];
  const name = (request.headers.host || "").replace(/:\d+$/, "").toLowerCase();
  if (!PASSWORD && !LOOPBACK_NAME.test(name)) return [403, "Without a login the board answers only on localhost."];
  if (!READ_METHODS.has(request.method) && fromAnotherSite(request)) {
    return [403, "Changes from pages of other sites are refused."];
  }
  return null;
}

function guarded(omniboard) {
  return (request, response) => {
    const refused = refusal(request);
    if (refused) {
      const [status, message] = refused;
      const headers = { "Content-Type": "text/plain; charset=utf-8" };
      if (status === 401) headers["WWW-Authenticate"] = 'Basic realm="tracker board", charset="UTF-8"';
      response.writeHead(status, headers).end(message + "\n");
      return;
    }
    const setHeader = response.setHeader;
    response.setHeader = function (name, value) {
      return /^access-control-/i.test(name) ? this : setHeader.call(this, name, value);
    };
    omniboard(request, response);
  };
}

// Omniboard's index.js builds its Express app and calls app.listen(port, callback), which makes one http.Server;
// that server gets the guard in front of the app and listens on HOST only.
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  const [omniboard] = this.listeners("request");
  this.removeAllListeners("request");
  this.on("request", guarded(omniboard));
  return listen.call(this, port, HOST, ...rest.filter((argument) => typeof argument === "function"));
};

const [startScript] = process.argv.splice(2, 1); // the rest of argv is Omniboard's
require(path.resolve(startScript));
