//! `broker`: parses flags, sets up logging and signals, and runs the library's server.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = broker::Config::parse();
    pipeline_common::logging::init();
    // The connection cap, not a low default soft limit, should bound the connections.
    pipeline_common::serve::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(broker::run(config, pipeline_common::shutdown::signal()))?;
    Ok(())
}
