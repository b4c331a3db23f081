//! `wdyno`: parse the command line, run it, map the outcome to an exit code.

mod cli;

use clap::Parser;

// The daemon allocates and frees small buffers on every request and every
// host call of every dyno; glibc's malloc spent ~6% of the router's time
// consolidating and unlinking chunks.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // wasmtime's errors capture a backtrace whenever std would: with
    // RUST_BACKTRACE=1 in the environment, every "would block" a dyno's
    // socket returns walked the stack (a third of the daemon's CPU under
    // load). Panics still honour RUST_BACKTRACE; RUST_LIB_BACKTRACE=1 turns
    // error backtraces back on.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet (the tokio runtime is built
        // below), so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = cli::Cli::parse();
    // Still single-threaded: namespaces and the umask are set here.
    cli.prepare_process();
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    std::process::exit(runtime.block_on(run(cli)));
}

async fn run(cli: cli::Cli) -> i32 {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WDYNO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!(" !    {e:#}");
            1
        }
    }
}
