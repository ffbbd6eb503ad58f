"""kazoo with SASL DIGEST-MD5 against the server under test (driven by tests/sasl.rs).

Usage: sasl_kazoo.py HOST USER PASSWORD ACTION PATH
USER "-" connects without SASL. ACTION: connect, create (PATH with ACL sasl:USER:cdrwa),
get (PATH's data), setacl-auth (create PATH with the `auth` ACL). Prints one JSON line:
{"result": "ok" | <kazoo exception class name>, "data": ..., "acl": ...}.
"""

import json
import logging
import sys

from kazoo.client import KazooClient
from kazoo.security import ACL, Id


class AuthFailedSeen(logging.Handler):
    """Notices kazoo's "AUTH_FAILED closing" log line.

    kazoo reports CONNECTED before its SASL exchange, so `start()` returns or not depending
    on which thread runs first: when the refusal lands before `start()` looks, `start()`
    raises its KazooTimeoutError ("Connection time-out") at once, against Apache ZooKeeper
    and zkrs alike. The session's own end state (AUTH_FAILED) tells the two apart."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.seen = False

    def emit(self, record):
        if "AUTH_FAILED" in record.getMessage():
            self.seen = True


auth_failed = AuthFailedSeen()
logging.getLogger("kazoo.client").addHandler(auth_failed)

host, user, password, action, path = sys.argv[1:6]
sasl = None
if user != "-":
    sasl = {"mechanism": "DIGEST-MD5", "username": user, "password": password}
client = KazooClient(hosts=host, sasl_options=sasl, connection_retry=None, timeout=10)
out = {}
try:
    client.start(timeout=15)
    if action == "create":
        client.create(path, b"secret", acl=[ACL(31, Id("sasl", user))])
        data, _ = client.get(path)
        out["data"] = data.decode()
        acl, _ = client.get_acls(path)
        out["acl"] = [[a.perms, a.id.scheme, a.id.id] for a in acl]
    elif action == "setacl-auth":
        client.create(path, b"x", acl=[ACL(31, Id("auth", ""))])
        acl, _ = client.get_acls(path)
        out["acl"] = [[a.perms, a.id.scheme, a.id.id] for a in acl]
    elif action == "get":
        data, _ = client.get(path)
        out["data"] = data.decode()
    out["result"] = "ok"
except Exception as e:  # the class name is the result the test compares
    out["result"] = type(e).__name__
    if out["result"] == "KazooTimeoutError" and auth_failed.seen:
        out["result"] = "AuthFailedError"
finally:
    try:
        client.stop()
        client.close()
    except Exception:
        pass
print(json.dumps(out))
