//! The `rpc-crypto` command line.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rpc_crypto::config::Config;
use rpc_crypto::server::{self, WEBSOCKET_PATH};

#[derive(Parser)]
#[command(name = "rpc-crypto", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (the default when no command is given).
    Serve {
        /// A TOML config file; without one, the embedded default is used.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::Serve { config } => serve(config),
    }
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(path.as_deref(), std::env::vars()).context("invalid config")?;
    actix_rt::System::new().block_on(async move {
        let running = server::start(&config)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        for addr in &running.addrs {
            // On stdout, so that scripts and tests can read the bound port.
            println!("rpc-crypto listening on ws://{addr}{WEBSOCKET_PATH}");
        }
        log::info!(
            "{} namespaces; anonymous clients may subscribe where a namespace allows it",
            config.namespaces.len()
        );
        running.run_until_signal().await?;
        log::info!("stopped");
        Ok(())
    })
}
