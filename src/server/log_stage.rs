//! The log task: the persistence step of the pipeline, a task on the ordering core's
//! executor (not an executor of its own: every executor that parks per request and every
//! cross-executor hop costs a wake-up).
//!
//! The ordering task pushes every commit batch with its txns, in zxid order, onto a local
//! (same-thread) [`LogQueue`] and goes on ordering the next requests at once. The log task
//! takes every batch that is waiting, writes all their txns with one O_DIRECT write and one
//! fdatasync through glommio's io_uring (group commit across batches; the executor keeps
//! running the ordering task meanwhile), and only then forwards the batches to the shards,
//! in order. So no reply leaves before its txn is durable, and while one group is being
//! written and synced the next one gathers.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use glommio::channels::shared_channel::{ConnectedSender, SharedSender};

use super::messages::{CommitBatch, ToShard};
use super::persistence::Persistence;
use crate::net::notify::Notify;
use crate::tree::{DataTree, Txn, TxnHeader};
use crate::wal::dma::DmaLog;

/// Most batches merged into one write + fdatasync.
const GROUP_BATCHES_MAX: usize = 256;

pub enum ToLog {
    /// A batch to make durable, then commit.
    Batch {
        txns: Vec<(TxnHeader, Txn)>,
        commit: Arc<CommitBatch>,
    },
    /// Start a snapshot of this version (taken after every batch before it).
    Snapshot {
        tree: DataTree,
        sessions: Vec<(i64, i32)>,
    },
}

/// The ordering task's hand-over to the log task, on one executor. Unbounded: what is in
/// flight is bounded by the shards' share of globalOutstandingLimit.
#[derive(Clone, Default)]
pub struct LogQueue {
    queue: Rc<RefCell<VecDeque<ToLog>>>,
    notify: Rc<Notify>,
}

impl LogQueue {
    pub fn push(&self, message: ToLog) {
        self.queue.borrow_mut().push_back(message);
        self.notify.notify();
    }

    /// Up to `max` waiting messages, oldest first.
    fn take(&self, max: usize) -> Vec<ToLog> {
        let mut queue = self.queue.borrow_mut();
        let n = queue.len().min(max);
        queue.drain(..n).collect()
    }
}

async fn flush(
    log: &mut DmaLog,
    txns: &mut Vec<(TxnHeader, Txn)>,
    commits: &mut Vec<Arc<CommitBatch>>,
    shards: &[ConnectedSender<ToShard>],
) {
    if let Err(e) = log.append_batch(txns).await {
        // Acknowledging anything now could lose it: stop, as ZooKeeper does.
        log::error!("cannot write the txn log, stopping: {e}");
        std::process::exit(3);
    }
    txns.clear();
    if commits.is_empty() {
        return;
    }
    super::SharedStats::mark_durable();
    for batch in commits.drain(..) {
        // Published before any shard has the batch: a shard that gets a read while its
        // applied version is below this waits for it (another shard may answer the write
        // first), so no read sees an older version than an answered write.
        if let Some(tree) = &batch.tree {
            super::SharedStats::publish_released_zxid(tree.last_zxid());
        }
        for shard in shards {
            if shard.send(ToShard::Commit(batch.clone())).await.is_err() {
                log::error!("a shard's commit channel is closed");
            }
        }
    }
    super::SharedStats::mark_sent();
}

/// Runs the log task until the process ends; spawned by the ordering core on its executor.
pub async fn run(
    mut persistence: Persistence,
    queue: LogQueue,
    to_shards: Vec<SharedSender<ToShard>>,
) {
    let mut shards = Vec::with_capacity(to_shards.len());
    for s in to_shards {
        shards.push(s.connect().await);
    }
    let Some(mut log) = persistence.open_log() else {
        log::error!("the txn log was opened twice, stopping");
        std::process::exit(3);
    };
    let mut txns: Vec<(TxnHeader, Txn)> = Vec::new();
    let mut commits: Vec<Arc<CommitBatch>> = Vec::new();
    loop {
        let messages = queue.take(GROUP_BATCHES_MAX);
        if messages.is_empty() {
            queue.notify.wait().await;
            continue;
        }
        for message in messages {
            match message {
                ToLog::Batch { txns: t, commit } => {
                    txns.extend(t);
                    commits.push(commit);
                }
                ToLog::Snapshot { tree, sessions } => {
                    // Everything before the snapshot is durable before its segment ends.
                    flush(&mut log, &mut txns, &mut commits, &shards).await;
                    persistence.start_snapshot(&mut log, tree, sessions).await;
                }
            }
        }
        flush(&mut log, &mut txns, &mut commits, &shards).await;
        persistence.maybe_purge(&log);
    }
}
