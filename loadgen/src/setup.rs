//! Before a run: create the key space under the prefix. After it: delete everything under
//! the prefix (unless `keep`). Both pipeline their requests over one session and are
//! bounded in time and in the number of nodes they touch.

use std::time::{Duration, Instant};

use zkrs::proto::{
    CreateRequest, DeleteRequest, ErrorCode, OpCode, PathWatchRequest, Request, Response,
};

use crate::client::{open_acl, ClientError, Conn};
use crate::keygen::{Layout, ValueGen};
use crate::runner::{connect_options, RunError};
use crate::stats::error_name;
use crate::workload::{Kind, OpKind, Settings};

/// Requests in flight during setup and cleanup.
const PIPELINE_WINDOW: usize = 512;
/// Setup and cleanup each give up after this long.
pub const PHASE_TIMEOUT: Duration = Duration::from_secs(600);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Cleanup descends at most this deep below the prefix...
const TREE_DEPTH_MAX: usize = 16;
/// ...and deletes at most this many nodes.
const TREE_NODES_MAX: usize = 20_000_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetupReport {
    pub created: u64,
    pub already_there: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub deleted: u64,
}

/// What the workload needs in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub keys: bool,
    pub nodes_dir: bool,
    pub churn_dir: bool,
    pub fanout_node: bool,
}

impl Needs {
    pub fn of(settings: &Settings) -> Needs {
        let mix = &settings.mix;
        let creates = [
            OpKind::Create,
            OpKind::CreateEphemeral,
            OpKind::CreateSequential,
            OpKind::Delete,
        ]
        .iter()
        .any(|op| mix.contains(*op));
        Needs {
            keys: settings.kind == Kind::Mix && mix.uses_keys(),
            nodes_dir: settings.kind == Kind::Mix && creates,
            churn_dir: settings.kind == Kind::Churn,
            fanout_node: settings.kind == Kind::Fanout,
        }
    }
}

fn session(settings: &Settings) -> Result<Conn<u64>, RunError> {
    let host = &settings.hosts[0];
    Conn::connect(host, &connect_options(settings))
        .map_err(|e| RunError(format!("cannot connect to {host}: {e}")))
}

fn failed(what: &str, path: &str, e: ClientError) -> RunError {
    RunError(format!("{what} {path}: {e}"))
}

fn create_request(path: String, data: bytes::Bytes) -> Request {
    Request::Create(
        OpCode::Create,
        CreateRequest {
            path,
            data,
            acl: open_acl(),
            flags: 0,
            ttl: -1,
        },
    )
}

/// Creates `path` and any missing parent; an existing node is fine.
fn ensure_path(conn: &mut Conn<u64>, path: &str) -> Result<(), RunError> {
    let mut partial = String::new();
    for component in path.split('/').filter(|c| !c.is_empty()) {
        partial.push('/');
        partial.push_str(component);
        let (header, _) = conn
            .call(
                &create_request(partial.clone(), bytes::Bytes::new()),
                CALL_TIMEOUT,
            )
            .map_err(|e| failed("creating", &partial, e))?;
        if header.err != 0 && header.err != ErrorCode::NodeExists.code() {
            return Err(RunError(format!(
                "creating {partial}: {}",
                error_name(header.err)
            )));
        }
    }
    Ok(())
}

/// Creates what the workload needs. Keys that already exist (from a kept run) are reused.
pub fn setup(settings: &Settings) -> Result<SetupReport, RunError> {
    let needs = Needs::of(settings);
    let layout = Layout::new(&settings.prefix);
    let mut conn = session(settings)?;
    let deadline = Instant::now() + PHASE_TIMEOUT;
    ensure_path(&mut conn, &settings.prefix)?;
    let mut report = SetupReport::default();
    if needs.nodes_dir {
        ensure_path(&mut conn, &layout.nodes_dir())?;
    }
    if needs.churn_dir {
        ensure_path(&mut conn, &layout.churn_dir())?;
    }
    if needs.fanout_node {
        ensure_path(&mut conn, &layout.fanout_node())?;
    }
    if needs.keys {
        ensure_path(&mut conn, &layout.keys_dir())?;
        let mut rng = rand::thread_rng();
        let values = ValueGen::new(settings.value_size, &mut rng);
        let requests = (0..settings.keys).map(|k| {
            let value = values.next(&mut rng);
            (create_request(layout.key_path(k), value), k)
        });
        let mut first_error = None;
        conn.pipeline(requests, PIPELINE_WINDOW, deadline, |key, header, _| {
            if header.err == 0 {
                report.created += 1;
            } else if header.err == ErrorCode::NodeExists.code() {
                report.already_there += 1;
            } else if first_error.is_none() {
                first_error = Some(format!(
                    "creating {}: {}",
                    layout.key_path(key),
                    error_name(header.err)
                ));
            }
            Ok(())
        })
        .map_err(|e| failed("creating keys under", &layout.keys_dir(), e))?;
        if let Some(message) = first_error {
            return Err(RunError(message));
        }
    }
    conn.close(Duration::from_secs(5));
    Ok(report)
}

/// Deletes the prefix and everything below it.
pub fn cleanup(settings: &Settings) -> Result<CleanupReport, RunError> {
    let layout = Layout::new(&settings.prefix);
    let mut conn = session(settings)?;
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut report = CleanupReport::default();
    // The keys by name first, so the keys directory is never listed in one huge reply.
    if Needs::of(settings).keys {
        let requests = (0..settings.keys).map(|k| {
            (
                Request::Delete(DeleteRequest {
                    path: layout.key_path(k),
                    version: -1,
                }),
                k,
            )
        });
        conn.pipeline(requests, PIPELINE_WINDOW, deadline, |_, header, _| {
            if header.err == 0 {
                report.deleted += 1;
            }
            Ok(())
        })
        .map_err(|e| failed("deleting keys under", &layout.keys_dir(), e))?;
    }
    report.deleted += delete_tree(&mut conn, &settings.prefix, deadline)?;
    conn.close(Duration::from_secs(5));
    Ok(report)
}

/// Lists the tree under `root` level by level (pipelined getChildren), then deletes it
/// deepest level first (pipelined deletes). Returns the number of nodes deleted.
pub fn delete_tree(conn: &mut Conn<u64>, root: &str, deadline: Instant) -> Result<u64, RunError> {
    let mut levels: Vec<Vec<String>> = vec![vec![root.to_string()]];
    let mut total = 1usize;
    while levels.len() <= TREE_DEPTH_MAX {
        let parents = levels.last().map(Vec::as_slice).unwrap_or(&[]);
        let mut children: Vec<String> = Vec::new();
        let requests = parents.iter().enumerate().map(|(i, p)| {
            (
                Request::GetChildren(PathWatchRequest {
                    path: p.clone(),
                    watch: false,
                }),
                i as u64,
            )
        });
        let mut too_many = false;
        conn.pipeline(
            requests,
            PIPELINE_WINDOW,
            deadline,
            |i, header, response| {
                if header.err != 0 {
                    return Ok(()); // NoNode: gone meanwhile.
                }
                if let (Response::GetChildren(names), Some(parent)) =
                    (response, parents.get(i as usize))
                {
                    if total + names.len() > TREE_NODES_MAX {
                        too_many = true;
                        return Ok(());
                    }
                    total += names.len();
                    children.extend(names.into_iter().map(|n| format!("{parent}/{n}")));
                }
                Ok(())
            },
        )
        .map_err(|e| failed("listing under", root, e))?;
        if too_many {
            return Err(RunError(format!(
                "{root} holds more than {TREE_NODES_MAX} nodes; not deleting it"
            )));
        }
        if children.is_empty() {
            break;
        }
        levels.push(children);
    }
    let mut deleted = 0u64;
    let mut first_error = None;
    for level in levels.iter().rev() {
        let requests = level.iter().enumerate().map(|(i, path)| {
            (
                Request::Delete(DeleteRequest {
                    path: path.clone(),
                    version: -1,
                }),
                i as u64,
            )
        });
        conn.pipeline(requests, PIPELINE_WINDOW, deadline, |i, header, _| {
            if header.err == 0 {
                deleted += 1;
            } else if header.err != ErrorCode::NoNode.code() && first_error.is_none() {
                first_error = Some(format!(
                    "deleting {}: {}",
                    level.get(i as usize).map_or("?", String::as_str),
                    error_name(header.err)
                ));
            }
            Ok(())
        })
        .map_err(|e| failed("deleting under", root, e))?;
    }
    match first_error {
        Some(message) => Err(RunError(message)),
        None => Ok(deleted),
    }
}
