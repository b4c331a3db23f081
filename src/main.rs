//! `wdyno`: parse the command line, run it, map the outcome to an exit code.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WDYNO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    let code = match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!(" !    {e:#}");
            1
        }
    };
    std::process::exit(code);
}
