#!/usr/bin/env python3
"""Drives the PUBLISHED client libraries, unmodified, against a live sessiond.

    python drive.py --base http://127.0.0.1:PORT --admin-token TOKEN

Provisioning and verification go through the admin API (/admin/v1) with stdlib urllib;
the calls under test go through the clients:

  * okta 3.4.6              Client.revoke_user_sessions      DELETE /api/v1/users/{id}/sessions
  * rocketchat-api 3.7.1    RocketChat.call_api_post(...)    POST /api/v1/users.logoutOtherClients
  * sudomimus-session 4.1.0 SessionClient.revoke_all(...)    POST /revoke-all

Prints `PASS name` / `FAIL name: reason` per check and a final `N passed, M failed`;
exits 1 if M > 0. Meant to be run by run.sh (fresh venv, throw-away cwd and HOME), but
works on its own against any sessiond started with a known admin token.
"""

import argparse
import asyncio
import datetime
import json
import os
import secrets
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

# The okta SDK refuses a non-https orgUrl unless this is set (only the environment or an
# okta.yaml can set it: the Client() dict is merged under "client").
os.environ.setdefault("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")

SDK_CALL_TIMEOUT = 30  # seconds, outer bound on any single client call
RATE_LIMIT_TIMEOUT = 100  # seconds, outer bound on a call that waits for a minute window

BASE = ""
ADMIN_TOKEN = ""
PREFIX = ""  # "tls: " when the checks run against an https server

# ---- results ---------------------------------------------------------------------------

_lock = threading.Lock()
_results = []  # (name, ok, detail)


def _record(name, ok, detail=""):
    name = PREFIX + name
    with _lock:
        _results.append((name, ok, detail))
        if ok:
            print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)
        else:
            print(f"FAIL {name}: {detail}", flush=True)


class CheckFailed(Exception):
    pass


def expect(cond, message):
    if not cond:
        raise CheckFailed(message)


def check(name, fn, *args):
    """Runs fn(*args); a falsy/None return is a pass, a string return is a pass note."""
    try:
        note = fn(*args)
        _record(name, True, note or "")
    except CheckFailed as e:
        _record(name, False, str(e))
    except Exception as e:  # a client crashing is a failure of the check, not of the run
        tb = traceback.format_exc(limit=4).strip().splitlines()
        _record(name, False, f"{type(e).__name__}: {e} | {' / '.join(tb[-3:])}")


async def acheck(name, coro_fn, *args):
    try:
        note = await coro_fn(*args)
        _record(name, True, note or "")
    except CheckFailed as e:
        _record(name, False, str(e))
    except Exception as e:
        tb = traceback.format_exc(limit=4).strip().splitlines()
        _record(name, False, f"{type(e).__name__}: {e} | {' / '.join(tb[-3:])}")


# ---- the admin API (stdlib only) -------------------------------------------------------

# No proxies: all traffic stays on 127.0.0.1 whatever the environment says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, path, body=None, headers=None, timeout=10):
    """(status, headers, parsed JSON or raw text) of a request to the server."""
    data = None
    h = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=h)
    try:
        with _opener.open(req, timeout=timeout) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return status, hdrs, parsed


def admin(method, path, body=None, want=None):
    status, _, v = http(
        method, "/admin/v1" + path, body, {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    if want is not None and status != want:
        raise CheckFailed(f"admin {method} {path} -> {status} {v}")
    return v


def new_app(prefix):
    anchor = f"{prefix}-{secrets.token_hex(3)}"
    return admin("POST", "/applications", {"id": anchor, "name": anchor}, want=201)


def new_account(prefix):
    login = f"{prefix}-{secrets.token_hex(3)}"
    password = "pw-" + secrets.token_urlsafe(12)
    a = admin(
        "POST",
        "/accounts",
        {"login": login, "email": f"{login}@example.com", "password": password},
        want=201,
    )
    a["password"] = password
    return a


def new_session(account_id, kind, app=None):
    body = {"account": account_id, "kind": kind}
    if app is not None:
        body["application"] = app
    return admin("POST", "/sessions", body, want=201)


def new_api_token(limit=None, scopes=("okta.users.manage",)):
    body = {"name": "clients-" + secrets.token_hex(3), "scopes": list(scopes)}
    if limit is not None:
        body["rate_limit_per_minute"] = limit
    return admin("POST", "/api-tokens", body, want=201)["token"]


def active(token):
    return admin("POST", "/introspect", {"token": token}, want=200)["active"]


def session_state(session_id):
    return admin("GET", f"/sessions/{session_id}", want=200)["state"]


# ---- Okta: okta 3.4.6 ------------------------------------------------------------------


def okta_client(token, max_retries=None, request_timeout=20):
    from okta.client import Client

    cfg = {"orgUrl": BASE, "token": token, "requestTimeout": request_timeout}
    if max_retries is not None:
        cfg["rateLimit"] = {"maxRetries": max_retries}
    return Client(cfg)


def okta_split(result):
    """The SDK answers (data, ApiResponse, None) on success and (aiohttp response, error)
    on an API error."""
    expect(isinstance(result, tuple), f"SDK returned {result!r}, not a tuple")
    if len(result) == 3:
        data, resp, err = result
        return resp, err
    if len(result) == 2:
        resp, err = result
        return resp, err
    raise CheckFailed(f"SDK returned a {len(result)}-tuple: {result!r}")


def status_of(resp):
    return getattr(resp, "status_code", None) or getattr(resp, "status", None)


async def okta_revoke(client, user_id, timeout=SDK_CALL_TIMEOUT, **kw):
    return okta_split(
        await asyncio.wait_for(client.revoke_user_sessions(user_id, **kw), timeout)
    )


def expect_okta_error(resp, err, status, code):
    from okta.errors.okta_api_error import OktaAPIError

    expect(err is not None, f"expected an {status} error, got success {status_of(resp)}")
    expect(
        isinstance(err, OktaAPIError),
        f"expected OktaAPIError {status} {code}, got {type(err).__name__}: {err}",
    )
    expect(
        err.status == status and err.error_code == code,
        f"expected {status} {code}, got {err.status} {err.error_code} {err.error_summary!r}",
    )


def okta_fixture(app):
    acct = new_account("okta")
    idp = [new_session(acct["id"], "idp") for _ in range(2)]
    oauth = new_session(acct["id"], "oauth", app)
    login = new_session(acct["id"], "login", app)
    return acct, idp, oauth, login


async def okta_checks(app, token):
    client = okta_client(token)

    async def without_oauth():
        acct, idp, oauth, login = okta_fixture(app)
        resp, err = await okta_revoke(client, acct["id"])
        expect(err is None, f"SDK reported an error: {err}")
        expect(status_of(resp) == 204, f"status {status_of(resp)}, want 204")
        states = [session_state(s["id"]) for s in idp]
        expect(states == ["revoked", "revoked"], f"idp sessions are {states}")
        expect(active(oauth["access_token"]), "oauth access token died without oauthTokens")
        expect(active(oauth["refresh_token"]), "oauth refresh token died without oauthTokens")
        expect(active(login["login_token"]), "app login session died")

    async def with_oauth():
        acct, idp, oauth, login = okta_fixture(app)
        resp, err = await okta_revoke(client, acct["id"], oauth_tokens=True)
        expect(err is None, f"SDK reported an error: {err}")
        expect(status_of(resp) == 204, f"status {status_of(resp)}, want 204")
        states = [session_state(s["id"]) for s in idp]
        expect(states == ["revoked", "revoked"], f"idp sessions are {states}")
        expect(not active(oauth["access_token"]), "oauth access token still active")
        expect(not active(oauth["refresh_token"]), "oauth refresh token still active")
        expect(session_state(oauth["id"]) == "revoked", "oauth session not revoked")
        expect(active(login["login_token"]), "app login session died (Okta leaves app sessions)")

    async def explicit_flags_false():
        acct, idp, oauth, _ = okta_fixture(app)
        resp, err = await okta_revoke(
            client, acct["id"], oauth_tokens=False, forget_devices=False
        )
        expect(err is None, f"SDK reported an error: {err}")
        expect(status_of(resp) == 204, f"status {status_of(resp)}, want 204")
        expect(session_state(idp[0]["id"]) == "revoked", "idp session not revoked")
        expect(active(oauth["refresh_token"]), "oauth refresh token died with oauthTokens=false")

    async def unknown_user():
        real = new_account("okta")["id"]
        ghost = real[::-1] if real[::-1] != real else real[1:] + real[0]
        for uid in (ghost, "00u-no-such-user"):
            resp, err = await okta_revoke(client, uid)
            expect_okta_error(resp, err, 404, "E0000007")
            expect(uid in err.error_summary, f"summary {err.error_summary!r} lacks the id")

    async def bad_token():
        acct, idp, _, _ = okta_fixture(app)
        c = okta_client("00" + secrets.token_urlsafe(30))
        resp, err = await okta_revoke(c, acct["id"])
        expect_okta_error(resp, err, 401, "E0000011")
        expect(session_state(idp[0]["id"]) == "active", "idp session revoked by a bad token")

    await acheck("okta: revoke_user_sessions kills idp sessions, keeps oauth tokens", without_oauth)
    await acheck("okta: revoke_user_sessions(oauth_tokens=True) kills oauth tokens too", with_oauth)
    await acheck("okta: oauth_tokens=False, forget_devices=False", explicit_flags_false)
    await acheck("okta: unknown user -> OktaAPIError 404 E0000007", unknown_user)
    await acheck("okta: invalid API token -> OktaAPIError 401 E0000011", bad_token)


def okta_rate_limit_checks(app):
    """Three checks around a token allowed 1 request per (calendar) minute.

    The server's window is the calendar minute, and the SDK waits until X-Rate-Limit-Reset
    (+1 s) before its retry, so a retry normally lands in a fresh window and succeeds.
    Token A shows exactly that. For token B the driver spends the fresh window's single
    request at reset+0.15 s, before the SDK's retry (>= reset+1 s), so the SDK must report
    the final 429. Both wait for the same reset, so this costs one wait (<= ~61 s); it runs
    in a thread alongside the other clients."""

    async def run():
        acct = new_account("okta-rl")
        ghost = "00u-rate-limit-probe"
        tok_a, tok_b = new_api_token(limit=1), new_api_token(limit=1)
        # Exhaust both tokens in one calendar minute, with some margin before it ends.
        if 60 - (time.time() % 60) < 8:
            await asyncio.sleep(60 - (time.time() % 60) + 0.3)
        for t in (tok_a, tok_b):
            st, _, _ = http("DELETE", f"/api/v1/users/{ghost}/sessions",
                            headers={"Authorization": f"SSWS {t}"})
            if st != 404:
                raise CheckFailed(f"spending the token's one request got {st}, want 404")
        idp = new_session(acct["id"], "idp")

        async def no_retry():
            c = okta_client(tok_b, max_retries=0)
            t0 = time.monotonic()
            resp, err = await okta_revoke(c, acct["id"])
            took = time.monotonic() - t0
            expect_okta_error(resp, err, 429, "E0000047")
            h = err.headers
            for name in ("Date", "X-Rate-Limit-Limit", "X-Rate-Limit-Remaining",
                         "X-Rate-Limit-Reset", "X-Okta-Request-Id"):
                expect(len(h.getall(name, [])) == 1, f"429 carries {h.getall(name, [])} for {name}")
            expect(h["X-Rate-Limit-Limit"] == "1" and h["X-Rate-Limit-Remaining"] == "0",
                   f"limit/remaining {h['X-Rate-Limit-Limit']}/{h['X-Rate-Limit-Remaining']}")
            expect(took < 5, f"took {took:.1f}s without retries")
            expect(session_state(idp["id"]) == "active", "a 429 revoked the session")
            return f"{took:.2f}s"

        await acheck("okta: rate limited, maxRetries=0 -> OktaAPIError 429 E0000047 with headers",
                      no_retry)

        reset_holder = {}

        async def retry_succeeds():
            c = okta_client(tok_a, max_retries=1, request_timeout=RATE_LIMIT_TIMEOUT)
            t0 = time.time()
            resp, err = await okta_revoke(c, acct["id"], timeout=RATE_LIMIT_TIMEOUT)
            took = time.time() - t0
            expect(err is None, f"after {took:.1f}s the SDK reported {err}")
            expect(status_of(resp) == 204, f"status {status_of(resp)}, want 204")
            reset = reset_holder.get("reset")
            expect(reset is not None and time.time() >= reset,
                   f"success before the window reset (reset={reset}, took {took:.1f}s)")
            expect(session_state(idp["id"]) == "revoked", "the retried call did not revoke")
            return f"429, waited for X-Rate-Limit-Reset, retry 204; took {took:.1f}s"

        async def retry_still_limited():
            c = okta_client(tok_b, max_retries=1, request_timeout=RATE_LIMIT_TIMEOUT)
            t0 = time.time()
            resp, err = await okta_revoke(c, acct["id"], timeout=RATE_LIMIT_TIMEOUT)
            took = time.time() - t0
            expect_okta_error(resp, err, 429, "E0000047")
            stolen = reset_holder.get("stolen")
            expect(stolen is not None, f"the driver could not spend the new window: {reset_holder}")
            expect(t0 + took >= reset_holder["reset"] + 1,
                   f"final 429 came before reset+1 s (took {took:.1f}s): no retry?")
            return f"429, waited for X-Rate-Limit-Reset, retry 429; took {took:.1f}s"

        async def steal_new_window():
            # The reset of token B's current window, as the server reports it.
            st, h, _ = await asyncio.to_thread(
                http, "DELETE", f"/api/v1/users/{ghost}/sessions", None,
                {"Authorization": f"SSWS {tok_b}"})
            if st != 429:
                reset_holder["error"] = f"probe got {st}, want 429"
                return
            reset = int(h["X-Rate-Limit-Reset"])
            reset_holder["reset"] = reset
            await asyncio.sleep(max(0.0, reset + 0.15 - time.time()))
            st, _, body = await asyncio.to_thread(
                http, "DELETE", f"/api/v1/users/{ghost}/sessions", None,
                {"Authorization": f"SSWS {tok_b}"})
            if st == 404:
                reset_holder["stolen"] = time.time()
            else:
                reset_holder["error"] = f"spending the new window at reset+0.15s got {st} {body}"

        thief = asyncio.create_task(steal_new_window())
        await asyncio.sleep(0.2)  # the probe's reset is known before the SDK calls start
        await asyncio.gather(
            acheck("okta: rate limited, maxRetries=1 -> retries after X-Rate-Limit-Reset, succeeds",
                   retry_succeeds),
            acheck("okta: rate limited, maxRetries=1, still limited -> OktaAPIError 429 E0000047",
                   retry_still_limited),
        )
        await asyncio.wait_for(thief, 5)

    try:
        asyncio.run(run())
    except Exception as e:
        _record("okta: rate-limit setup", False, f"{type(e).__name__}: {e}")


# ---- Rocket.Chat: rocketchat-api 3.7.1 --------------------------------------------------


def rocketchat_checks():
    from rocketchat_API.rocketchat import RocketChat

    app = new_app("rc")
    server = f"{BASE}/apps/{app['id']}"
    acct = new_account("rcuser")
    pat = new_session(acct["id"], "pat", app["id"])["personal_access_token"]
    clients = {}

    def rc_status(fn):
        """The HTTP status a rocketchat-api exception carries, or None if fn succeeded."""
        try:
            fn()
            return None
        except Exception as e:
            code = getattr(e, "status_code", None)
            if code is None:
                raise CheckFailed(f"{type(e).__name__}: {e} (no status_code)")
            return code

    def logins():
        for n in ("one", "two", "three"):
            rc = RocketChat(acct["login"], acct["password"], server_url=server, timeout=10)
            expect(rc.headers.get("X-User-Id") == acct["id"], f"userId {rc.headers}")
            expect(rc.headers.get("X-Auth-Token"), "no authToken")
            clients[n] = rc
        by_mail = RocketChat(acct["email"], acct["password"], server_url=server, timeout=10)
        expect(by_mail.headers.get("X-User-Id") == acct["id"], "e-mail login: wrong userId")
        clients["mail"] = by_mail
        toks = {c.headers["X-Auth-Token"] for c in clients.values()}
        expect(len(toks) == 4, "login tokens are not distinct")

    def bad_password():
        from rocketchat_API.APIExceptions.RocketExceptions import RocketAuthenticationException

        try:
            RocketChat(acct["login"], "wrong-" + acct["password"], server_url=server, timeout=10)
        except RocketAuthenticationException:
            return
        raise CheckFailed("no RocketAuthenticationException")

    check("rocketchat: login x3 (username) + login by e-mail", logins)
    check("rocketchat: wrong password -> RocketAuthenticationException", bad_password)
    if len(clients) < 4:
        _record("rocketchat: logoutOtherClients", False, "skipped: logins failed")
        return
    me_tok = clients["one"].headers["X-Auth-Token"]

    def logout_others():
        r = clients["one"].call_api_post("users.logoutOtherClients")
        expect(isinstance(r, dict), f"answer is {type(r).__name__}: {r!r}")
        expect(r.get("success") is True, f"success is {r.get('success')!r}")
        expect(r.get("token") == me_tok, f"token {r.get('token')!r} != own token")
        te = r.get("tokenExpires")
        expect(isinstance(te, str) and te, f"tokenExpires {te!r}")
        when = datetime.datetime.fromisoformat(te.replace("Z", "+00:00"))
        expect(when > datetime.datetime.now(datetime.timezone.utc),
               f"tokenExpires {te} is in the past")

    def caller_survives():
        me = clients["one"].me()
        expect(me.get("_id") == acct["id"] and me.get("success") is True, f"me() = {me}")
        expect(active(me_tok), "admin introspect: caller's token inactive")

    def others_dead():
        for n in ("two", "three", "mail"):
            st = rc_status(clients[n].me)
            expect(st == 401, f"me() with login {n!r} -> {st or 'success'}, want 401")
            expect(not active(clients[n].headers["X-Auth-Token"]), f"login {n!r} still active")

    def pat_survives():
        rc = RocketChat(auth_token=pat, user_id=acct["id"], server_url=server, timeout=10)
        me = rc.me()
        expect(me.get("_id") == acct["id"], f"me() = {me}")

    def unauthenticated():
        rc = RocketChat(auth_token="not-a-token", user_id=acct["id"], server_url=server, timeout=10)
        st = rc_status(lambda: rc.call_api_post("users.logoutOtherClients"))
        expect(st == 401, f"-> {st or 'success'}, want 401")
        expect(active(me_tok), "a bad token's call logged the caller out")

    check("rocketchat: users.logoutOtherClients -> 200 {token, tokenExpires, success: true}",
          logout_others)
    check("rocketchat: caller's me() still works", caller_survives)
    check("rocketchat: other logins' me() -> 401", others_dead)
    check("rocketchat: personal access token still works", pat_survives)
    check("rocketchat: logoutOtherClients with a bad token -> 401", unauthenticated)


# ---- Sudomimus: sudomimus-session 4.1.0 --------------------------------------------------


def sudomimus_checks():
    from sudomimus_session import (
        RevokeAllRequest,
        SessionApiError,
        SessionClient,
        SessionClientAuthWithKey,
    )

    app = new_app("sdm")
    other = new_app("sdm-other")
    acct = new_account("sdm")
    login = new_session(acct["id"], "login", app["id"])
    oauth = new_session(acct["id"], "oauth", app["id"])
    elsewhere = new_session(acct["id"], "oauth", other["id"])
    subject = login["subject"]
    auth = SessionClientAuthWithKey(app["id"], app["connect_private_key_pem"])

    def revoke(client_auth, subj):
        with SessionClient(BASE, client_auth=client_auth) as c:
            return c.revoke_all(RevokeAllRequest(subject=subj))

    def first():
        expect(subject and oauth["subject"] == subject, f"subjects {subject} {oauth['subject']}")
        r = revoke(auth, subject)
        expect(r.revoked.value is True, f"answer {r!r}")
        for s in (login, oauth):
            expect(not active(s["refresh_token"]), f"{s['kind']} refresh token still active")
            expect(session_state(s["id"]) == "revoked", f"{s['kind']} session not revoked")
        expect(active(elsewhere["refresh_token"]), "the other application's session died")

    def second():
        r = revoke(auth, subject)
        expect(r.revoked.value is True, f"answer {r!r}")
        expect(active(elsewhere["refresh_token"]), "the other application's session died")

    def wrong_key():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        fresh = new_session(acct["id"], "oauth", app["id"])
        try:
            revoke(SessionClientAuthWithKey(app["id"], pem), subject)
        except SessionApiError as e:
            expect(e.status == 401, f"status {e.status} ({e.reason}), want 401")
            expect(active(fresh["refresh_token"]), "a rejected call revoked tokens")
            return f"reason {e.reason}"
        raise CheckFailed("revoke_all with a wrong key succeeded")

    check("sudomimus: revoke_all -> {revoked: true}; app's refresh tokens die, other app's live",
          first)
    check("sudomimus: second revoke_all also succeeds", second)
    check("sudomimus: wrong private key -> SessionApiError 401", wrong_key)


# ---- main -------------------------------------------------------------------------------


def main():
    global BASE, ADMIN_TOKEN, PREFIX
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True, help="http://127.0.0.1:PORT (no trailing slash)")
    p.add_argument("--admin-token", required=True)
    p.add_argument(
        "--tls",
        action="store_true",
        help="the base is https (trusted through SSL_CERT_FILE): run the Okta SDK's checks "
        "only, with its refusal of plain http left on",
    )
    a = p.parse_args()
    BASE, ADMIN_TOKEN = a.base.rstrip("/"), a.admin_token
    if a.tls:
        PREFIX = "tls: "
        os.environ.pop("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", None)

    def setup():
        st, _, v = http("GET", "/healthz")
        expect(st == 200, f"/healthz -> {st} {v}")
        admin("GET", "/applications", want=200)

    check("setup: server healthy, admin token accepted", setup)
    if not _results[-1][1]:
        return finish()

    okta_app = new_app("okta")["id"]
    if a.tls:
        token = new_api_token()

        def refuses_plain_http():
            global BASE
            https = BASE
            BASE = https.replace("https://", "http://", 1)
            try:
                okta_client(token)
            except Exception as e:  # the SDK's own refusal, whatever its class
                expect("https" in str(e).lower(), f"refused for another reason: {e}")
            else:
                raise CheckFailed("the SDK accepted an http:// orgUrl: its https check is off")
            finally:
                BASE = https

        check("okta: the SDK refuses http:// (the https check is on)", refuses_plain_http)
        asyncio.run(okta_checks(okta_app, token))
        return finish()
    # The rate-limit checks wait for a minute window: run them alongside the rest.
    rl = threading.Thread(target=okta_rate_limit_checks, args=(okta_app,), daemon=True)
    rl.start()

    token = new_api_token()
    asyncio.run(okta_checks(okta_app, token))
    for section in (rocketchat_checks, sudomimus_checks):
        try:
            section()
        except Exception as e:
            _record(f"{section.__name__}: setup", False, f"{type(e).__name__}: {e}")

    rl.join(RATE_LIMIT_TIMEOUT + 30)
    if rl.is_alive():
        _record("okta: rate-limit checks", False, "did not finish in time")
    return finish()


def finish():
    with _lock:
        passed = sum(1 for _, ok, _ in _results if ok)
        failed = len(_results) - passed
        print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
