//! The log task: the persistence step of the pipeline, a task on the ordering core's
//! executor (not an executor of its own: every executor that parks per request and every
//! cross-executor hop costs a wake-up).
//!
//! The ordering task pushes the txns of every batch, in zxid order, onto a local
//! (same-thread) [`LogQueue`] and goes on ordering the next requests at once. The log task
//! takes everything that is waiting, writes it with one O_DIRECT write and one fdatasync
//! through glommio's io_uring (group commit across batches; the executor keeps running the
//! ordering task meanwhile), and then reports how far the log is durable
//! ([`LogQueue::persisted`] and the `on_persisted` callback). It releases nothing itself:
//! the ordering core's commit releaser hands batches to the shards once they are durable
//! here and, in an ensemble, acknowledged by a quorum. So no reply leaves before its txn is
//! durable, and while one group is being written and synced the next one gathers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use super::persistence::Persistence;
use crate::net::notify::Notify;
use crate::tree::{DataTree, Txn, TxnHeader};
use crate::wal::dma::DmaLog;

/// Most queued messages merged into one write + fdatasync.
const GROUP_MESSAGES_MAX: usize = 256;

/// A standalone server writes a group this small (at most this many txns in at most this
/// many bytes) on the ordering executor's own thread when nothing else is queued behind it:
/// a lone write at a low rate (see `DmaLog::set_write_here_max`). Larger groups come under
/// load, where the ordering core should go on ordering while the group is written.
const WRITE_HERE_MAX_TXNS: usize = 4;
const WRITE_HERE_MAX_BYTES: usize = 16 * 1024;

pub enum ToLog {
    /// Txns to make durable, in zxid order.
    Txns(Vec<(TxnHeader, Txn)>),
    /// Start a snapshot of this version (taken after everything queued before it is
    /// durable).
    Snapshot {
        tree: Box<DataTree>,
        sessions: Vec<(i64, i32)>,
    },
}

/// The ordering task's hand-over to the log task, on one executor. Unbounded: what is in
/// flight is bounded by the shards' share of globalOutstandingLimit (and, on a follower, by
/// what the leader has outstanding).
#[derive(Clone)]
pub struct LogQueue {
    queue: Rc<RefCell<VecDeque<ToLog>>>,
    notify: Rc<Notify>,
    /// The last zxid queued. Invariant: only grows.
    queued: Rc<Cell<i64>>,
    /// The last zxid durable in the log. Invariant: `persisted <= queued`, only grows.
    persisted: Rc<Cell<i64>>,
    /// Set by [`LogQueue::stop`]: the task finishes the write in progress and ends.
    stopping: Rc<Cell<bool>>,
    stopped: Rc<Notify>,
    done: Rc<Cell<bool>>,
    /// Whether a task runs over this queue ([`run`] sets it).
    started: Rc<Cell<bool>>,
    /// What the task hands back when it ends: the persistence, its log closed.
    returned: Rc<RefCell<Option<Persistence>>>,
}

impl LogQueue {
    /// A queue for a log whose last durable zxid is `last_zxid`.
    pub fn new(last_zxid: i64) -> LogQueue {
        LogQueue {
            queue: Rc::default(),
            notify: Rc::new(Notify::new()),
            queued: Rc::new(Cell::new(last_zxid)),
            persisted: Rc::new(Cell::new(last_zxid)),
            stopping: Rc::default(),
            stopped: Rc::new(Notify::new()),
            done: Rc::default(),
            started: Rc::default(),
            returned: Rc::default(),
        }
    }

    /// Queues txns (zxids increasing, after everything queued before).
    pub fn push_txns(&self, txns: Vec<(TxnHeader, Txn)>) {
        let Some(last) = txns.last().map(|(h, _)| h.zxid) else {
            return;
        };
        assert!(
            txns.first().map(|(h, _)| h.zxid) > Some(self.queued.get()),
            "txn 0x{:x} queued after 0x{:x}",
            txns[0].0.zxid,
            self.queued.get()
        );
        self.queued.set(last);
        self.queue.borrow_mut().push_back(ToLog::Txns(txns));
        self.notify.notify();
    }

    pub fn push_snapshot(&self, tree: DataTree, sessions: Vec<(i64, i32)>) {
        self.queue.borrow_mut().push_back(ToLog::Snapshot {
            tree: Box::new(tree),
            sessions,
        });
        self.notify.notify();
    }

    /// A task runs over this queue (set before it is spawned, so that a `stop` right
    /// after waits for it).
    pub fn mark_started(&self) {
        self.started.set(true);
    }

    /// The last zxid durable in the log.
    pub fn persisted(&self) -> i64 {
        self.persisted.get()
    }

    /// The last zxid handed to the log.
    pub fn queued(&self) -> i64 {
        self.queued.get()
    }

    /// Asks the task to end once everything queued is written (so that the log holds
    /// every txn the ordering core made: the state it ends with is the state recovery
    /// would read); resolves once the task has closed the log file. Afterwards
    /// `persisted() == queued()` unless the task was never started.
    pub async fn stop(&self) {
        self.stopping.set(true);
        self.notify.notify();
        while self.started.get() && !self.done.get() {
            self.stopped.wait().await;
        }
    }

    /// The persistence the ended task handed back (its log closed, ready for the next
    /// term's task); None before [`LogQueue::stop`] or if the task never ran.
    pub fn take_persistence(&self) -> Option<Persistence> {
        self.returned.borrow_mut().take()
    }

    /// Up to `max` waiting messages, oldest first.
    fn take(&self, max: usize) -> Vec<ToLog> {
        let mut queue = self.queue.borrow_mut();
        let n = queue.len().min(max);
        queue.drain(..n).collect()
    }
}

async fn flush(log: &mut DmaLog, txns: &mut Vec<(TxnHeader, Txn)>, queue: &LogQueue) -> i64 {
    let Some(last) = txns.last().map(|(h, _)| h.zxid) else {
        return queue.persisted.get();
    };
    let started = std::time::Instant::now();
    if let Err(e) = log.append_batch(txns).await {
        // Acknowledging anything now could lose it: stop, as ZooKeeper does.
        log::error!("cannot write the txn log, stopping: {e}");
        std::process::exit(3);
    }
    crate::metrics::record_fsync(started.elapsed().as_millis() as u64);
    txns.clear();
    debug_assert!(last > queue.persisted.get());
    queue.persisted.set(last);
    super::SharedStats::mark_durable();
    last
}

/// Runs the log task until [`LogQueue::stop`]; spawned by the ordering core on its
/// executor. `on_persisted(upto)` runs after every write that made new txns durable.
pub async fn run(mut persistence: Persistence, queue: LogQueue, on_persisted: Rc<dyn Fn(i64)>) {
    queue.mark_started();
    let Some(mut log) = persistence.open_log() else {
        log::error!("the txn log was opened twice, stopping");
        std::process::exit(3);
    };
    let mut txns: Vec<(TxnHeader, Txn)> = Vec::new();
    loop {
        let messages = queue.take(GROUP_MESSAGES_MAX);
        if messages.is_empty() {
            if queue.stopping.get() {
                break;
            }
            queue.notify.wait().await;
            continue;
        }
        let before = queue.persisted.get();
        for message in messages {
            match message {
                ToLog::Txns(t) => txns.extend(t),
                // Not started once the term is ending: its end would wait for the write (a
                // snapshot only shortens recovery; a later one is asked for in time).
                ToLog::Snapshot { .. } if queue.stopping.get() => {}
                ToLog::Snapshot { tree, sessions } => {
                    // Everything before the snapshot is durable before its segment ends.
                    flush(&mut log, &mut txns, &queue).await;
                    persistence.start_snapshot(&mut log, *tree, sessions).await;
                }
            }
        }
        // A few txns and nothing else waiting: blocking for the write holds up little, and
        // skipping the pool saves two thread wake-ups.
        let lone = persistence.writes_small_batches_here()
            && txns.len() <= WRITE_HERE_MAX_TXNS
            && queue.queue.borrow().is_empty();
        log.set_write_here_max(if lone { WRITE_HERE_MAX_BYTES } else { 0 });
        let upto = flush(&mut log, &mut txns, &queue).await;
        if upto > before {
            on_persisted(upto);
        }
        persistence.maybe_purge(&log);
    }
    let closed = log.close().await;
    persistence.finish_snapshot();
    match closed {
        Ok(layout) => {
            persistence.put_back_log(layout);
            *queue.returned.borrow_mut() = Some(persistence);
        }
        // The next term recovers from the files (and fails there if they stay unusable).
        Err(e) => log::error!("cannot close the txn log: {e}"),
    }
    queue.done.set(true);
    queue.stopped.notify();
}
