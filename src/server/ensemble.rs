//! An ensemble member's life: terms of service, each starting from the state the log holds.
//!
//! A term: look for a leader (the election threads), then lead or follow until the quorum
//! or the leader is lost. When a term ends the shards close every client connection
//! (clients reconnect, to this or another server) and the log task stops once it has
//! written everything queued.
//!
//! Invariant: the state a term starts from is always snapshot + every logged txn
//! (ZOOKEEPER-2845): nothing a term applied outlives it unless its log holds it. The first
//! term recovers it from the files. A later one starts from what the previous term kept in
//! memory ([`Ordering::into_recovered`]: a leader's tree holds every txn it made, all of
//! them logged by then; a follower's committed tree gets its logged proposals applied, as
//! ZooKeeper's `fastForwardDataBase` does), with the log's files left open, so a failover
//! does not wait for a database to be read back; only when that state does not end where
//! the log does is it read from the files again, on a blocking thread while the election
//! runs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::shared_channel::{SharedReceiver, SharedSender};

use super::election::{Command, ElectionHandle};
use super::log_stage::LogQueue;
use super::messages::{ToOrdering, ToShard};
use super::ordering::{spawn_wiring, Ordering, Role, Wiring};
use super::persistence::{EpochFiles, Persistence, Recovered};
use crate::config::Config;
use crate::zab::{Member, PeerState, QuorumConfig};

/// What a term's code works with.
pub(crate) struct Term<'a> {
    pub config: &'a Config,
    pub quorum: &'a QuorumConfig,
    pub ordering: &'a mut Ordering,
    pub wiring: &'a Wiring,
    pub log: &'a mut LogQueue,
    pub epochs: &'a EpochFiles,
}

/// The ensemble's membership from the config's `server.N` lines.
pub fn quorum_config(config: &Config) -> QuorumConfig {
    QuorumConfig::new(
        config
            .servers
            .iter()
            .map(|s| Member {
                id: s.id,
                host: s.host.clone(),
                quorum_port: s.quorum_port,
                election_port: s.election_port,
                observer: s.observer,
                client: s.client_port.map(|port| (None, port)),
            })
            .collect(),
        0,
    )
}

pub(crate) fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} has no address"))
}

/// Binds the quorum port, retrying briefly (a previous term's socket may linger).
pub(crate) async fn bind_quorum(addr: SocketAddr) -> Result<glommio::net::TcpListener, String> {
    let mut last = String::new();
    for _ in 0..50 {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .map_err(|e| e.to_string())?;
        let _ = socket.set_reuse_address(true);
        match socket.bind(&addr.into()).and_then(|_| socket.listen(64)) {
            Ok(()) => {
                use std::os::fd::{FromRawFd, IntoRawFd};
                // SAFETY: a listening TCP socket we own, handed over whole.
                return Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) });
            }
            Err(e) => last = e.to_string(),
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("cannot bind the quorum port {addr}: {last}"))
}

/// ZooKeeper's `initConfigInZKDatabase` (at start-up and after each sync): the quorum
/// config as `/zookeeper/config`, which clients read with `getConfig` (zkCli.sh `config`).
pub(crate) fn init_config_node(tree: &mut crate::tree::DataTree, quorum: &QuorumConfig) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    tree.set_config_node(
        &crate::zab::wire::config_to_zk_string(quorum),
        quorum.version,
        now_ms,
    );
}

/// The value, or the server stops with the reason: state on disk it cannot use between
/// terms (as at start-up, where the same checks refuse to start).
fn or_exit<T>(result: Result<T, String>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => {
            log::error!("zkrs refuses to go on: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs terms until the process ends. `first` is the state recovered before the
/// executors started (its errors were reported then).
pub(crate) async fn run(
    config: Arc<Config>,
    stats: Arc<super::SharedStats>,
    election: ElectionHandle,
    first: (Persistence, Recovered),
    from_shards: Vec<SharedReceiver<ToOrdering>>,
    to_shards: Vec<SharedSender<ToShard>>,
) {
    let quorum = quorum_config(&config);
    let me = config.my_id.unwrap_or(0);
    let wiring = spawn_wiring(&config, from_shards, to_shards);
    let epochs = EpochFiles::new(&config);
    let mut next = Some(first);
    let mut failed_terms = 0u32;
    // What the previous term left in the log (its last durable zxid): the next election
    // starts with it at once, while the state is recovered from disk meanwhile (the
    // election runs on its own threads), so a failover does not wait for the reload.
    let mut announced: Option<i64> = None;
    loop {
        // ZooKeeper's election_time: from entering LOOKING to the decision.
        let looking_since = std::time::Instant::now();
        crate::metrics::quorum::add(&crate::metrics::quorum::LOOKING_COUNT, 1);
        if let Some(last_zxid) = announced {
            let (_, current_epoch) = or_exit(epochs.load(last_zxid));
            stats.set_mode(super::Mode::Looking);
            election.command(Command::Look {
                last_zxid,
                epoch: current_epoch,
            });
        }
        // The first term's state was recovered before the executors started; a later
        // term's is read on a blocking thread while the election runs, so that a server
        // that decides to lead opens its quorum port at once (below).
        let ready = next.take();
        let recovering = ready.is_none().then(|| {
            let config = config.clone();
            glommio::executor().spawn_blocking(move || Persistence::open(&config))
        });
        if announced.is_none() {
            let (_, recovered) = ready.as_ref().expect("the first term's state");
            let last_zxid = recovered.tree.last_zxid();
            let (_, current_epoch) = or_exit(epochs.load(last_zxid));
            stats.set_mode(super::Mode::Looking);
            election.command(Command::Look {
                last_zxid,
                epoch: current_epoch,
            });
        }
        let (state, vote) = loop {
            if let Some(decision) = election.try_decision() {
                break decision;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        };
        // Recorded by ZooKeeper's Leader.lead and Follower.followLeader (not observers).
        if matches!(state, PeerState::Leading | PeerState::Following) {
            crate::metrics::quorum::ELECTION_TIME
                .record(looking_since.elapsed().as_millis() as u64);
        }
        // As ZooKeeper's Leader binds its quorum port before it loads its database: the
        // learners that decided with us may connect at once (they retry only briefly), and
        // wait in the backlog until the state is read. Bound after the recovery instead,
        // they could all give up first and look again while we wait initLimit for them,
        // term after term (found by tests/rolling_migration.rs).
        let quorum_listener = match state {
            PeerState::Leading => match quorum.member(me) {
                Some(member) => match resolve(&member.host, member.quorum_port) {
                    Ok(listen) => bind_quorum(listen).await.ok(),
                    Err(_) => None,
                },
                None => None,
            },
            _ => None,
        };
        let (persistence, mut recovered) = match (ready, recovering) {
            (Some(state), _) => state,
            (None, Some(recovering)) => or_exit(recovering.await),
            (None, None) => unreachable!("a term's state is either ready or being recovered"),
        };
        let last_zxid = recovered.tree.last_zxid();
        let (accepted_epoch, current_epoch) = or_exit(epochs.load(last_zxid));
        log::info!(
            "recovered: last zxid 0x{last_zxid:x}, current epoch {current_epoch}, accepted \
             epoch {accepted_epoch}; decided {}",
            state.mode_name()
        );
        if let Some(early) = announced.filter(|early| *early != last_zxid) {
            // Recovery found another end of the log than the term made durable: the disk
            // changed under us, and the vote already cast may be wrong. Stop.
            log::error!(
                "the txn log ends at 0x{last_zxid:x}, but the last term made it durable up to \
                 0x{early:x}; stopping"
            );
            std::process::exit(1);
        }
        // Whatever clients sent before this term is void (their connections were closed).
        wiring.inbox.clear();
        init_config_node(&mut recovered.tree, &quorum);
        let mut ordering = Ordering::new(&config, stats.clone(), recovered);
        ordering.accepted_epoch = accepted_epoch;
        ordering.current_epoch = current_epoch;
        let mut log = LogQueue::new(last_zxid);
        // A follower's term may end before it started the log task (in its sync): then the
        // persistence is still here.
        let mut unspent = None;
        let tick = Duration::from_millis(config.tick_time_ms as u64);
        let outcome = match state {
            PeerState::Leading => {
                ordering.role = Role::Leader(Box::new(super::leader::Leading::new(
                    me,
                    Arc::new(quorum.clone()),
                    &ordering.tree,
                    accepted_epoch,
                    current_epoch,
                    tick * config.sync_limit.max(1),
                    super::leader::LeaderHistory {
                        recent: &ordering.recent,
                        files: Some(super::persistence::LogHistory::new(&config)),
                    },
                )));
                super::ordering::spawn_log_task(persistence, &log, &wiring.inbox);
                super::leader::run_term(
                    Term {
                        config: &config,
                        quorum: &quorum,
                        ordering: &mut ordering,
                        wiring: &wiring,
                        log: &mut log,
                        epochs: &epochs,
                    },
                    &election,
                    quorum_listener,
                )
                .await
            }
            PeerState::Following | PeerState::Observing => {
                unspent = Some(persistence);
                super::follower::run_term(
                    Term {
                        config: &config,
                        quorum: &quorum,
                        ordering: &mut ordering,
                        wiring: &wiring,
                        log: &mut log,
                        epochs: &epochs,
                    },
                    vote.leader,
                    &mut unspent,
                    &election,
                    state == PeerState::Observing,
                )
                .await
            }
            PeerState::Looking => {
                unspent = Some(persistence);
                Ok(())
            }
        };
        // A term that never served (its handshake or sync failed) is retried after a
        // growing pause, up to a tick: a leader that keeps refusing us must not be
        // hammered. A term that served ends in a new election at once (failover: every
        // millisecond here is one the ensemble cannot write).
        let served = stats.mode() != super::Mode::Looking;
        if let Err(reason) = outcome {
            log::warn!("the term as {} ended: {reason}", state.mode_name());
        }
        failed_terms = if served { 0 } else { failed_terms + 1 };
        stats.set_mode(super::Mode::Looking);
        wiring.releaser.reset(0);
        log.stop().await;
        let durable = log.persisted();
        announced = Some(durable);
        let kept = match unspent.take().or_else(|| log.take_persistence()) {
            Some(persistence) => match ordering.into_recovered(durable) {
                Ok(recovered) => {
                    log::info!(
                        "the next term starts from the state in memory: {} znodes, {} sessions, \
                         last zxid 0x{durable:x}",
                        recovered.tree.node_count(),
                        recovered.sessions.len()
                    );
                    Some((persistence, recovered))
                }
                Err(reason) => {
                    log::warn!("the next term recovers the state from the files: {reason}");
                    None
                }
            },
            None => {
                log::info!("the next term recovers the state from the files");
                None
            }
        };
        next = kept;
        if !served {
            let pause_ms = (50 * (1u64 << failed_terms.min(6))).min(config.tick_time_ms as u64);
            glommio::timer::sleep(Duration::from_millis(pause_ms.max(50))).await;
        }
    }
}
