//! A single-executor wake-up signal that coalesces repeated notifications.

use std::cell::Cell;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

pub struct Notify {
    pending: Cell<bool>,
    tx: LocalSender<()>,
    rx: LocalReceiver<()>,
}

impl Default for Notify {
    fn default() -> Self {
        Self::new()
    }
}

impl Notify {
    pub fn new() -> Notify {
        let (tx, rx) = local_channel::new_bounded(1);
        Notify {
            pending: Cell::new(false),
            tx,
            rx,
        }
    }

    /// Wakes the waiter (now, or at its next wait). Cheap when already pending.
    pub fn notify(&self) {
        if !self.pending.replace(true) {
            let _ = self.tx.try_send(());
        }
    }

    /// Waits for a notification sent since the last wait returned.
    pub async fn wait(&self) {
        let _ = self.rx.recv().await;
        self.pending.set(false);
    }
}
