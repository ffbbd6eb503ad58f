//! The log stage: the persistence step of the pipeline, on an executor of its own.
//!
//! The ordering core hands it every commit batch with the batch's txns, in zxid order, and
//! goes on ordering the next requests at once. The log stage takes every batch that is
//! waiting, writes all their txns with one write and one fdatasync (group commit across
//! batches), and only then forwards the batches to the shards, in order. So no reply leaves
//! before its txn is durable, and while one group is being synced the next one gathers.

use std::sync::Arc;

use glommio::channels::shared_channel::{ConnectedSender, SharedReceiver, SharedSender};

use super::messages::{CommitBatch, ToShard};
use super::persistence::Persistence;
use crate::tree::{DataTree, Txn, TxnHeader};

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

async fn flush(
    persistence: &mut Persistence,
    txns: &mut Vec<(TxnHeader, Txn)>,
    commits: &mut Vec<Arc<CommitBatch>>,
    shards: &[ConnectedSender<ToShard>],
) {
    if let Err(e) = persistence.append(txns) {
        // Acknowledging anything now could lose it: stop, as ZooKeeper does.
        log::error!("cannot write the txn log, stopping: {e}");
        std::process::exit(3);
    }
    txns.clear();
    for batch in commits.drain(..) {
        for shard in shards {
            if shard.send(ToShard::Commit(batch.clone())).await.is_err() {
                log::error!("a shard's commit channel is closed");
            }
        }
    }
}

pub async fn run(
    mut persistence: Persistence,
    from_ordering: SharedReceiver<ToLog>,
    to_shards: Vec<SharedSender<ToShard>>,
) {
    let receiver = from_ordering.connect().await;
    let mut shards = Vec::with_capacity(to_shards.len());
    for s in to_shards {
        shards.push(s.connect().await);
    }
    let mut txns: Vec<(TxnHeader, Txn)> = Vec::new();
    let mut commits: Vec<Arc<CommitBatch>> = Vec::new();
    while let Some(first) = receiver.recv().await {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(message) = next.take() {
            taken += 1;
            match message {
                ToLog::Batch { txns: t, commit } => {
                    txns.extend(t);
                    commits.push(commit);
                }
                ToLog::Snapshot { tree, sessions } => {
                    // Everything before the snapshot is durable before its segment ends.
                    flush(&mut persistence, &mut txns, &mut commits, &shards).await;
                    persistence.start_snapshot(tree, sessions);
                }
            }
            if taken < GROUP_BATCHES_MAX {
                next = futures_lite::future::poll_once(receiver.recv())
                    .await
                    .flatten();
            }
        }
        flush(&mut persistence, &mut txns, &mut commits, &shards).await;
        persistence.maybe_purge();
    }
    log::error!("the ordering core's log channel closed");
}
