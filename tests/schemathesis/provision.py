"""Provisions a fresh sessiond for schemathesis through the admin API and prints the
credentials as shell assignments: an application (the default one), one account and
session per shape that authenticates with a user's token, and an Okta API token. Standard library only.

    provision.py BASE ADMIN_TOKEN
"""
import json
import shlex
import sys
import urllib.request

BASE, ADMIN = sys.argv[1], sys.argv[2]


def admin(method, path, body=None):
    req = urllib.request.Request(
        BASE + "/admin/v1" + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": "Bearer " + ADMIN, "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def session(login, kind):
    account = admin("POST", "/accounts", {"login": login, "email": login, "password": "correct horse"})
    return account, admin("POST", "/sessions", {"account": account["id"], "application": app["id"], "kind": kind})


# One account per credential: a revoke-all through one shape (Rocket.Chat's
# logoutOtherClients, say) must not end the session another shape's credential rides on.
# Flashback's revoke-all ends the caller's own session too, so schemathesis logs in again
# through /user/login as flashback@example.com whenever it gets a 401 (schemathesis.toml).
app = admin("POST", "/applications", {"id": "fuzzed", "name": "Fuzzed"})
_, rownd = session("rownd@example.com", "login")
admin("POST", "/accounts", {"login": "flashback@example.com", "email": "flashback@example.com", "password": "correct horse"})
rc_account, rc = session("rocketchat@example.com", "login")
okta = admin("POST", "/api-tokens", {
    "name": "fuzz",
    "scopes": ["okta.users.manage", "okta.sessions.manage", "okta.sessions.read"],
    "rate_limit_per_minute": 1000000,
})
out = {
    "ST_ROWND_KEY": app["rownd_app_key"],
    "ST_ROWND_SECRET": app["rownd_app_secret"],
    "ST_HUB_JWT": rownd["hub_jwt"],
    "ST_RC_TOKEN": rc["login_token"],
    "ST_RC_USER": rc_account["id"],
    "ST_OKTA": "SSWS " + okta["token"],
}
for k, v in out.items():
    print(f"export {k}={shlex.quote(v)}")
