//! Logging setup: one call at the top of every `main`.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global `tracing` subscriber.
///
/// The filter comes from `RUST_LOG` (default `info`); `LOG_FORMAT=json` switches to one JSON
/// object per line, which is what log collectors in a cluster want. Calling it twice is harmless
/// (the second call is ignored), so tests can call it freely.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only for a person at a terminal; a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
