#!/usr/bin/env python3
"""kazoo (a ZooKeeper client this project did not write) against a server: recipes,
watches, transactions, ACLs and session close. Usage: kazoo_smoke.py HOST:PORT. Exits
non-zero with a message on the first failed check."""
import sys
import threading
import uuid

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoAuthError, NodeExistsError, NotEmptyError
from kazoo.security import make_digest_acl

hosts = sys.argv[1]
root = "/kazoo-" + uuid.uuid4().hex[:8]


def client():
    c = KazooClient(hosts=hosts, timeout=10)
    c.start(timeout=10)
    return c


zk = client()
assert zk.server_version()[:2] == (3, 8) or zk.server_version()[:1] == (3,), zk.server_version()
zk.ensure_path(root + "/a/b")

# Create modes and errors.
seq = zk.create(root + "/seq-", b"x", sequence=True)
assert seq.startswith(root + "/seq-") and len(seq.rsplit("-", 1)[1]) == 10, seq
try:
    zk.create(root + "/a", b"")
    raise AssertionError("NodeExists expected")
except NodeExistsError:
    pass
try:
    zk.delete(root + "/a")
    raise AssertionError("NotEmpty expected")
except NotEmptyError:
    pass
zk.set(root + "/a", b"v1")
try:
    zk.set(root + "/a", b"v2", version=7)
    raise AssertionError("BadVersion expected")
except BadVersionError:
    pass
data, stat = zk.get(root + "/a")
assert data == b"v1" and stat.version == 1 and stat.numChildren == 1, (data, stat)

# Watches: a data watch and a children watch fire once each, with the right types.
fired = {"data": threading.Event(), "children": threading.Event()}
events = []


@zk.DataWatch(root + "/a")
def data_watch(data, stat, event=None):
    if event is not None:
        events.append(("data", event.type, event.path))
        fired["data"].set()


@zk.ChildrenWatch(root + "/a", send_event=True)
def children_watch(children, event=None):
    if event is not None:
        events.append(("children", event.type, event.path))
        fired["children"].set()


zk.set(root + "/a", b"v2")
zk.create(root + "/a/c", b"")
assert fired["data"].wait(10) and fired["children"].wait(10), events
assert ("data", "CHANGED", root + "/a") in events, events
assert ("children", "CHILD", root + "/a") in events, events

# Transactions are all-or-nothing.
t = zk.transaction()
t.create(root + "/t1", b"1")
t.check(root + "/a", 99)
results = t.commit()
assert isinstance(results[1], BadVersionError), results
assert zk.exists(root + "/t1") is None
t = zk.transaction()
t.create(root + "/t1", b"1")
t.set_data(root + "/t1", b"2")
t.delete(root + "/a/b")
assert t.commit() == [root + "/t1", zk.exists(root + "/t1"), True]

# Recipes: lock, counter, election, queue.
other = client()
lock = zk.Lock(root + "/lock", "first")
with lock:
    contender = other.Lock(root + "/lock", "second")
    assert not contender.acquire(blocking=False)
    zk.sync(root + "/lock")  # other's give-up (a delete) may come from another server
    assert lock.contenders() == ["first"], lock.contenders()
assert contender.acquire(timeout=10)
contender.release()
counter = zk.Counter(root + "/counter")
counter += 5
counter -= 2
assert counter.value == 3, counter.value
queue = zk.Queue(root + "/queue")
for item in (b"one", b"two", b"three"):
    queue.put(item)
assert [queue.get(), queue.get(), queue.get()] == [b"one", b"two", b"three"]
elected = threading.Event()
election = other.Election(root + "/election", "other")
threading.Thread(target=election.run, args=(elected.set,), daemon=True).start()
assert elected.wait(10)

# ACLs: a digest-protected node.
secure = zk.create(root + "/secure", b"s", acl=[make_digest_acl("alice", "pw", all=True)])
try:
    zk.get(secure)
    raise AssertionError("NoAuth expected")
except NoAuthError:
    pass
zk.add_auth("digest", "alice:pw")
assert zk.get(secure)[0] == b"s"

# Ephemerals go with their session.
eph = other.create(root + "/eph", b"", ephemeral=True)
other.stop()
other.close()
# The close was answered by other's server; zk may be on another server of an ensemble,
# and ZooKeeper promises a client the writes of others only after a sync.
zk.sync(eph)
assert zk.exists(eph) is None, "ephemeral survived its session's close"

zk.delete(root, recursive=True)
zk.stop()
zk.close()
print("kazoo smoke: all checks passed")
