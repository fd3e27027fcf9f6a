//! Shutdown on SIGTERM and SIGINT.
//!
//! Async servers pass [`signal`] into their `run` function as the future that starts the
//! drain. Blocking clients use [`ShutdownFlag`], which a signal sets and their loops poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Completes on the first SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// A flag set once SIGTERM or SIGINT arrives (or [`ShutdownFlag::trigger`] is called), for
/// blocking code. Cloning shares the flag.
#[derive(Clone, Debug, Default)]
pub struct ShutdownFlag(Arc<AtomicBool>);

impl ShutdownFlag {
    /// A flag that only [`ShutdownFlag::trigger`] sets (tests, embedding).
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag that SIGTERM and SIGINT set. Spawns one small thread that waits for the signal.
    pub fn on_signals() -> std::io::Result<Self> {
        let flag = Self::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let setter = flag.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    signal().await;
                    setter.trigger();
                })
            })?;
        Ok(flag)
    }

    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps up to `duration`, waking early (and returning `true`) when the flag is set.
    /// Lets blocking loops back off without delaying shutdown.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = std::time::Instant::now() + duration;
        while !self.is_set() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
        true
    }
}
