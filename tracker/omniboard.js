// Omniboard 2.16.1 with the safeguards of `tracker board` and the compose stack, in Omniboard's own process:
//   node omniboard.js OMNIBOARD/dist/start.js
// Settings come from the environment, so that no secret is on a command line, where `ps` shows it to everyone:
//   BOARD_HOST      the address to listen on (default 127.0.0.1); Omniboard itself listens on every address.
//   BOARD_PASSWORD  when set, every request needs HTTP basic auth as BOARD_USER (default sacred). Omniboard's own
//                   login takes the password only on its command line (-u user:password:secret).
//   BOARD_TOKEN     otherwise, every request needs this token, as Jupyter's do: in the URL that `tracker board` prints
//                   (?token=...), which leaves it in an HttpOnly, SameSite=Strict cookie for Omniboard's own requests.
//                   One of the two is required: a board that anyone on the machine could use is never started.
//   BOARD_FIRST_SCREEN  a JSON file of Omniboard's local storage defaults {key: value} (tracker/board_columns.py),
//                   written into a browser's local storage by Omniboard's page before the app loads, for each key
//                   the browser has no value of its own for.
// Whatever the settings, no page of another site can use the board:
//   - No CORS headers. Omniboard sends Access-Control-Allow-Origin: * (with PUT and DELETE allowed), which lets any
//     web page its user opens read, change and delete the runs. Its own pages come from the board and need none.
//   - A write (any method but GET, HEAD, OPTIONS) whose Origin is another site is refused, which covers the plain
//     form posts that need no CORS.
//   - Without a login, only requests for a loopback name (localhost, 127.x.x.x, [::1]) are served, so that a page
//     whose own name resolves to 127.0.0.1 (DNS rebinding) is not served as if it were the board.
//   - Stored files (artifacts, sources: /api/v1/files/...) are never active content of the board's origin: an HTML
//     or SVG artifact is served sandboxed (Content-Security-Policy: sandbox: no script, an origin of its own) and
//     with its type taken as given (X-Content-Type-Options: nosniff). Omniboard previews HTML artifacts in an iframe.
//     So is every answer of Omniboard's, not only the paths spelt /api/v1/files/: its routes ignore case, and the only
//     page of the board that runs scripts is its app page, which this guard serves.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const http = require("http");
const path = require("path");

const HOST = process.env.BOARD_HOST || "127.0.0.1";
const USER = process.env.BOARD_USER || "sacred";
const PASSWORD = process.env.BOARD_PASSWORD || "";
const TOKEN = process.env.BOARD_TOKEN || "";
const FIRST_SCREEN = process.env.BOARD_FIRST_SCREEN;
for (const name of ["BOARD_PASSWORD", "BOARD_TOKEN"]) delete process.env[name]; // Omniboard needs neither
if (!PASSWORD && !TOKEN) {
  console.error("omniboard.js: set BOARD_PASSWORD (a login) or BOARD_TOKEN (a token in the URL) in the environment");
  process.exit(2);
}
const APP_PATH = "/sacred"; // where Omniboard serves its page, without an OMNIBOARD_CONFIG
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

let cookieName = "tracker-board"; // named after the port (set by listen below): cookies do not tell ports apart

function cookie(request, name) {
  for (const pair of (request.headers.cookie || "").split(";")) {
    const [key, ...value] = pair.trim().split("=");
    if (key === name) return value.join("=");
  }
  return undefined;
}

function givenToken(request) {
  // The token in the URL, or else the one its cookie keeps.
  return new URL(request.url, "http://board").searchParams.get("token") ?? cookie(request, cookieName);
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
  const token = givenToken(request);
  if (!PASSWORD && (token === undefined || !sameText(token, TOKEN))) {
    return [401, "Open the board with the URL that 'tracker board' printed: it holds the board's token."];
  }
  if (!READ_METHODS.has(request.method) && fromAnotherSite(request)) {
    return [403, "Changes from pages of other sites are refused."];
  }
  return null;
}

function keepToken(request, response) {
  // The token from the URL, kept for the page's own requests; a page opened with it is reloaded without it, so that
  // it stays out of the address bar and the history.
  const url = new URL(request.url, "http://board");
  if (PASSWORD || !url.searchParams.has("token")) return false;
  response.setHeader("Set-Cookie", `${cookieName}=${TOKEN}; HttpOnly; SameSite=Strict; Path=/`);
  if (request.headers["sec-fetch-mode"] !== "navigate") return false;
  url.searchParams.delete("token");
  response.writeHead(303, { Location: url.pathname + url.search }).end();
  return true;
}

function isAppPage(request) {
  const { pathname } = new URL(request.url, "http://board");
  const inApp = pathname === APP_PATH || pathname.startsWith(APP_PATH + "/");
  return request.method === "GET" && inApp && !pathname.startsWith(APP_PATH + "/api/");
}

function appPage(indexFile) {
  // Omniboard's page with a script before the app's that seeds the local storage defaults. The JSON is escaped
  // for a script element: stored names never end it.
  const defaults = FIRST_SCREEN ? fs.readFileSync(FIRST_SCREEN, "utf8") : "{}";
  const literal = JSON.stringify(JSON.parse(defaults)).replace(/</g, "\\u003c");
  const seed = `<script>(function (defaults) { for (const key in defaults) { if (localStorage.getItem(key) === null) ` +
    `localStorage.setItem(key, JSON.stringify(defaults[key])); } })(${literal});</script>`;
  return fs.readFileSync(indexFile, "utf8").replace("<script", seed + "<script");
}

function guarded(omniboard, indexPage) {
  return (request, response) => {
    const refused = refusal(request);
    if (refused) {
      const [status, message] = refused;
      const headers = { "Content-Type": "text/plain; charset=utf-8" };
      if (status === 401 && PASSWORD) headers["WWW-Authenticate"] = 'Basic realm="tracker board", charset="UTF-8"';
      response.writeHead(status, headers).end(message + "\n");
      return;
    }
    if (keepToken(request, response)) return;
    if (isAppPage(request)) {
      response.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
      response.end(indexPage);
      return;
    }
    response.setHeader("Content-Security-Policy", "sandbox");
    response.setHeader("X-Content-Type-Options", "nosniff");
    const setHeader = response.setHeader;
    response.setHeader = function (name, value) {
      return /^access-control-/i.test(name) ? this : setHeader.call(this, name, value);
    };
    omniboard(request, response);
  };
}

const [startScript] = process.argv.splice(2, 1); // the rest of argv is Omniboard's
const indexPage = appPage(path.resolve(path.dirname(startScript), "..", "web", "build", "index.html"));

// Omniboard's index.js builds its Express app and calls app.listen(port, callback), which makes one http.Server
// (again with the next port when one is busy); that server gets the guard in front of the app and listens on HOST.
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  const [omniboard] = this.listeners("request");
  this.removeAllListeners("request");
  this.on("request", guarded(omniboard, indexPage));
  cookieName = `tracker-board-${port}`;
  return listen.call(this, port, HOST, ...rest.filter((argument) => typeof argument === "function"));
};

require(path.resolve(startScript));
