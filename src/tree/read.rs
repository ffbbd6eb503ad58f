//! Reads served against one tree version, as ZooKeeper 3.8's FinalRequestProcessor serves
//! them, and the watch re-registration of setWatches (DataTree.setWatches).

use super::{acl, ConnId, DataTree, SessionView, WatchTable, Znode};
use crate::proto::{
    add_watch_mode, keeper_state, perms, watcher_type, Acl, ClientInfo, ErrorCode, EventType, Id,
    MultiOp, MultiResult, PathWatchRequest, Request, Response, SetWatches, WatcherEvent,
};

/// Serves a read request (exists, getData, getChildren, getChildren2, getACL,
/// getAllChildrenNumber, getEphemerals, multiRead, addWatch, checkWatches, removeWatches,
/// whoAmI) against one tree version, registering any watch it asks for under `conn`.
///
/// A request that is not one of those answers Unimplemented (a caller bug).
pub fn serve_read(
    tree: &DataTree,
    req: &Request,
    session: &SessionView,
    conn: ConnId,
    watches: &mut WatchTable,
) -> Result<Response, ErrorCode> {
    let auth = session.auth.as_slice();
    match req {
        Request::Exists(req) => {
            // exists registers its watch (a data watch) whether or not the node exists.
            // It checks no ACL: that is Apache ZooKeeper 3.8.0-3.8.3, the 3.8 that zkrs is
            // compared against (Debian's package); 3.8.4 added a READ check
            // (ZOOKEEPER-2590).
            if req.path.contains('\0') {
                return Err(ErrorCode::BadArguments);
            }
            let node = tree.get(&req.path);
            if req.watch {
                watches.add_data_watch(&req.path, conn);
            }
            node.map(|node| Response::Stat(node.stat()))
                .ok_or(ErrorCode::NoNode)
        }
        Request::GetData(req) => {
            let (data, stat) = get_data(tree, req, auth, Some((conn, watches)))?;
            Ok(Response::GetData(data, stat))
        }
        Request::GetChildren(req) => {
            let node = get_children(tree, req, auth, Some((conn, watches)))?;
            Ok(Response::GetChildren(child_names(node)))
        }
        Request::GetChildren2(req) => {
            let node = get_children(tree, req, auth, Some((conn, watches)))?;
            Ok(Response::GetChildren2(child_names(node), node.stat()))
        }
        Request::GetAcl(path) => {
            // READ or ADMIN lets a client read the ACL; without ADMIN the digest ids are
            // masked ("user:hash" -> "user:x").
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::READ | perms::ADMIN, auth)?;
            let list = if acl::check(&node.acl, perms::ADMIN, auth).is_ok() {
                node.acl.to_vec()
            } else {
                node.acl.iter().map(mask_digest).collect()
            };
            Ok(Response::GetAcl(list, node.stat()))
        }
        Request::GetAllChildrenNumber(path) => {
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::READ, auth)?;
            Ok(Response::GetAllChildrenNumber(
                tree.all_children_number(path),
            ))
        }
        Request::GetEphemerals(prefix) => {
            // No ACL check. An empty, blank or "/" prefix means all; otherwise a plain
            // string prefix ("/a" also matches "/ab").
            let trimmed = prefix.trim_matches(|c: char| c <= ' ');
            let all = tree.ephemerals_of(session.session_id);
            if trimmed.is_empty() || trimmed == "/" {
                Ok(Response::GetEphemerals(all))
            } else {
                Ok(Response::GetEphemerals(
                    all.into_iter()
                        .filter(|p| p.starts_with(prefix.as_str()))
                        .collect(),
                ))
            }
        }
        Request::MultiRead(ops) => {
            // Per-op errors; ZooKeeper's decoder drops the watch flag of multiRead ops, so
            // they never register a watch. Any other op kind fails the whole request.
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                let result = match op {
                    MultiOp::GetChildren(req) => match get_children(tree, req, auth, None) {
                        Ok(node) => MultiResult::GetChildren(child_names(node)),
                        Err(code) => MultiResult::Error(code),
                    },
                    MultiOp::GetData(req) => match get_data(tree, req, auth, None) {
                        Ok((data, stat)) => MultiResult::GetData(data, stat),
                        Err(code) => MultiResult::Error(code),
                    },
                    _ => return Err(ErrorCode::MarshallingError),
                };
                results.push(result);
            }
            Ok(Response::Multi(results))
        }
        Request::AddWatch(req) => {
            // The node need not exist. ZooKeeper answers an unknown mode with
            // MarshallingError (WatcherMode.fromZooDef throws).
            match req.mode {
                add_watch_mode::PERSISTENT => watches.add_persistent_watch(&req.path, conn),
                add_watch_mode::PERSISTENT_RECURSIVE => {
                    watches.add_persistent_recursive_watch(&req.path, conn)
                }
                _ => return Err(ErrorCode::MarshallingError),
            }
            Ok(Response::AddWatch)
        }
        Request::CheckWatches(req) => {
            known_watcher_type(req.watcher_type)?;
            if watches.check_watches(&req.path, req.watcher_type, conn) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::RemoveWatches(req) => {
            known_watcher_type(req.watcher_type)?;
            if watches.remove_watches(&req.path, req.watcher_type, conn) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Request::WhoAmI => Ok(Response::WhoAmI(
            session.auth.iter().map(client_info).collect(),
        )),
        other => {
            log::error!("serve_read called with a non-read request {other:?}");
            Err(ErrorCode::Unimplemented)
        }
    }
}

/// 3.8's WatcherType.fromInt knows CHILDREN, DATA and ANY only; anything else throws, which
/// FinalRequestProcessor answers with MarshallingError.
fn known_watcher_type(kind: i32) -> Result<(), ErrorCode> {
    match kind {
        watcher_type::CHILDREN | watcher_type::DATA | watcher_type::ANY => Ok(()),
        _ => Err(ErrorCode::MarshallingError),
    }
}

type WatchTo<'a> = Option<(ConnId, &'a mut WatchTable)>;

/// getData: NoNode (no watch), then READ, then the data watch.
fn get_data(
    tree: &DataTree,
    req: &PathWatchRequest,
    auth: &[Id],
    watch_to: WatchTo,
) -> Result<(bytes::Bytes, crate::proto::Stat), ErrorCode> {
    let node = tree.get(&req.path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, auth)?;
    if let (true, Some((conn, watches))) = (req.watch, watch_to) {
        watches.add_data_watch(&req.path, conn);
    }
    Ok((node.data_bytes(), node.stat()))
}

/// getChildren / getChildren2: NoNode (no watch), then READ, then the child watch.
fn get_children<'t>(
    tree: &'t DataTree,
    req: &PathWatchRequest,
    auth: &[Id],
    watch_to: WatchTo,
) -> Result<&'t Znode, ErrorCode> {
    let node = tree.get(&req.path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, auth)?;
    if let (true, Some((conn, watches))) = (req.watch, watch_to) {
        watches.add_child_watch(&req.path, conn);
    }
    Ok(node)
}

/// Child names, sorted (ZooKeeper's order is its HashSet's; clients must not rely on it).
fn child_names(node: &Znode) -> Vec<String> {
    node.children.iter().map(str::to_string).collect()
}

/// getACL without ADMIN: a digest id `user:hash` reads `user:x` (Java's
/// `replaceAll(":.*", ":x")`, which leaves an id without a colon alone).
fn mask_digest(entry: &Acl) -> Acl {
    if entry.id.scheme != "digest" {
        return entry.clone();
    }
    let id = match entry.id.id.find(':') {
        Some(colon) => format!("{}:x", &entry.id.id[..colon]),
        None => entry.id.id.clone(),
    };
    Acl {
        perms: entry.perms,
        id: Id {
            scheme: entry.id.scheme.clone(),
            id,
        },
    }
}

/// whoAmI's ClientInfo (AuthUtil.getClientInfos): the scheme and the provider's user name:
/// digest gives the user part of `user:hash`, ip the address; schemes without a provider
/// (super) give "".
fn client_info(id: &Id) -> ClientInfo {
    let user = match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or("").to_string(),
        "ip" | "x509" => id.id.clone(),
        _ => String::new(),
    };
    ClientInfo {
        auth_scheme: id.scheme.clone(),
        user,
    }
}

/// setWatches / setWatches2 after a reconnect: re-registers the watches and returns the
/// events that fire at once for changes made after `relative_zxid` while the client was away.
///
/// As DataTree.setWatches: a data watch on a missing node fires NodeDeleted, on a node
/// changed after `relative_zxid` NodeDataChanged, else it is registered; an exist watch
/// fires NodeCreated when the node exists, else it is registered (as a data watch); a child
/// watch fires NodeDeleted / NodeChildrenChanged (pzxid) or is registered. Persistent and
/// recursive watches are registered and never fire here. Events come in that order (data,
/// exist, child), each list in its own order, with state SyncConnected.
pub fn set_watches(
    tree: &DataTree,
    sw: &SetWatches,
    conn: ConnId,
    watches: &mut WatchTable,
) -> Vec<WatcherEvent> {
    let mut events = Vec::new();
    let mut fire = |event_type: EventType, path: &str| {
        events.push(WatcherEvent {
            event_type,
            state: keeper_state::SYNC_CONNECTED,
            path: path.to_string(),
        })
    };
    for path in &sw.data_watches {
        match tree.get(path) {
            None => fire(EventType::NodeDeleted, path),
            Some(node) if node.mzxid > sw.relative_zxid => fire(EventType::NodeDataChanged, path),
            Some(_) => watches.add_data_watch(path, conn),
        }
    }
    for path in &sw.exist_watches {
        match tree.get(path) {
            Some(_) => fire(EventType::NodeCreated, path),
            None => watches.add_data_watch(path, conn),
        }
    }
    for path in &sw.child_watches {
        match tree.get(path) {
            None => fire(EventType::NodeDeleted, path),
            Some(node) if node.pzxid > sw.relative_zxid => {
                fire(EventType::NodeChildrenChanged, path)
            }
            Some(_) => watches.add_child_watch(path, conn),
        }
    }
    for path in &sw.persistent_watches {
        watches.add_persistent_watch(path, conn);
    }
    for path in &sw.persistent_recursive_watches {
        watches.add_persistent_recursive_watch(path, conn);
    }
    events
}
