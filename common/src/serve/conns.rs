//! The registry of open connections: how many there are, which phase each is in (waiting for
//! a request head, idle between requests, busy with one), and which one to shed when the
//! server is full.
//!
//! It only keeps the books and sends signals; the connection task (in `connection.rs`) acts on
//! them, and the accept loop (in `accept.rs`) decides when to shed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::ServeMetrics;

/// Waiting for a request head: a new connection (TLS handshake included), or a keep-alive
/// one whose next request has begun to arrive. Bounded by the header-read timeout.
const HEAD: u8 = 0;
/// Keep-alive between requests, no byte of the next one yet. Bounded by the idle timeout.
const IDLE: u8 = 1;
/// A request is being answered (its response body included): never timed out nor shed.
const BUSY: u8 = 2;

/// One connection's shared state: written by its own task (the I/O wrapper, the service),
/// read by the accept loop when it looks for a connection to shed.
pub struct Conn {
    id: u64,
    phase: AtomicU8,
    /// When the current phase began, in nanoseconds since the registry's epoch.
    since: AtomicU64,
    /// Whether any request was answered on it: a socket that never sent one is shed first.
    served: AtomicBool,
    shed: AtomicBool,
    /// Beyond the cap: answers only the reserved paths (health, metrics).
    pub reserved: bool,
    /// Wakes the connection task: its phase changed, or it is to be shed.
    pub wake: Notify,
    epoch: Instant,
    metrics: Arc<ServeMetrics>,
}

impl Conn {
    fn set(&self, phase: u8) {
        self.since
            .store(self.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        self.wake.notify_one();
    }

    /// A request head is complete and handed to the handler.
    pub fn busy(&self) {
        self.served.store(true, Ordering::Relaxed);
        self.metrics.in_flight.increment(1.0);
        self.set(BUSY);
    }

    /// The response is sent: wait for the next request.
    pub fn idle(&self) {
        self.metrics.in_flight.decrement(1.0);
        self.set(IDLE);
    }

    /// The connection closes early: it timed out waiting for a request.
    pub fn timed_out(&self) {
        self.metrics.timed_out.increment(1);
    }

    /// Bytes arrived: an idle keep-alive connection starts reading a head.
    pub fn bytes_arrived(&self) {
        if self.phase.load(Ordering::Acquire) == IDLE {
            self.set(HEAD);
        }
    }

    pub fn is_busy(&self) -> bool {
        self.phase.load(Ordering::Acquire) == BUSY
    }

    pub fn is_shed(&self) -> bool {
        self.shed.load(Ordering::Acquire)
    }

    /// When the current phase times out (`None` while busy).
    pub fn deadline(&self, header_read: Duration, idle: Duration) -> Option<Instant> {
        let since = self.epoch + Duration::from_nanos(self.since.load(Ordering::Relaxed));
        match self.phase.load(Ordering::Acquire) {
            HEAD => Some(since + header_read),
            IDLE => Some(since + idle),
            _ => None,
        }
    }

    fn shed(&self) {
        self.shed.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// Every open connection of one server.
pub struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Connections told to close that have not closed yet.
    shedding: AtomicUsize,
    /// Notified whenever a connection closes (the accept loop waits on it after shedding, the
    /// drain until none is left).
    pub closed: Notify,
    epoch: Instant,
    pub metrics: Arc<ServeMetrics>,
}

impl Registry {
    pub fn new(metrics: ServeMetrics) -> Registry {
        Registry {
            conns: Mutex::default(),
            next_id: AtomicU64::new(0),
            shedding: AtomicUsize::new(0),
            closed: Notify::new(),
            epoch: Instant::now(),
            metrics: Arc::new(metrics),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // The map stays consistent whatever a panicking holder did: every operation on it is
        // a single insert, remove or read.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn open(&self) -> usize {
        self.lock().len()
    }

    /// Open connections, and how many of them are being shed.
    pub fn counts(&self) -> (usize, usize) {
        let open = self.lock().len();
        (open, self.shedding.load(Ordering::Acquire).min(open))
    }

    /// Registers a new connection, waiting for its first head; it leaves the registry when the
    /// returned guard drops.
    pub fn register(self: &Arc<Self>, reserved: bool) -> (Arc<Conn>, Registered) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(self.epoch.elapsed().as_nanos() as u64),
            served: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            reserved,
            wake: Notify::new(),
            epoch: self.epoch,
            metrics: Arc::clone(&self.metrics),
        });
        self.lock().insert(id, Arc::clone(&conn));
        self.metrics.open.increment(1.0);
        (
            Arc::clone(&conn),
            Registered {
                registry: Arc::clone(self),
                id,
            },
        )
    }

    /// Tells the connection that has waited longest without a request in flight to close,
    /// preferring sockets that never sent a whole request over idle keep-alive clients.
    /// Returns whether there was one.
    pub fn shed_one(&self) -> bool {
        let victim = self
            .lock()
            .values()
            .filter(|c| !c.is_busy() && !c.is_shed())
            .min_by_key(|c| {
                (
                    c.served.load(Ordering::Relaxed),
                    c.since.load(Ordering::Relaxed),
                    c.id,
                )
            })
            .cloned();
        match victim {
            Some(conn) => {
                self.shedding.fetch_add(1, Ordering::AcqRel);
                self.metrics.shed.increment(1);
                conn.shed();
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the registry; dropping it (when the connection task ends, however
/// it ends) removes it and wakes whoever waits for a free slot.
pub struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let removed = self.registry.lock().remove(&self.id);
        if removed.is_some_and(|conn| conn.is_shed()) {
            self.registry.shedding.fetch_sub(1, Ordering::AcqRel);
        }
        self.registry.metrics.open.decrement(1.0);
        self.registry.closed.notify_waiters();
    }
}
