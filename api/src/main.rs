//! The `api` binary: flags, logging, signals; everything else is the `api` library.

use anyhow::Context;

/// See the `mimalloc` entry in Cargo.toml for why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = api::config::Args::parse();
    if args.print_openapi {
        print!("{}", api::openapi::spec_json());
        return Ok(());
    }
    pipeline_common::logging::init();
    // The connection cap, not a low default soft limit, should bound the connections.
    pipeline_common::serve::raise_fd_limit();
    let config = api::Config::from(&args);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.worker_threads > 0 {
        runtime.worker_threads(args.worker_threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(api::run(config, pipeline_common::shutdown::signal()))?;
    tracing::info!("api stopped");
    Ok(())
}
