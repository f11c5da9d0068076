//! The `sessiond` binary: logging, the command line, and the one place that prints an
//! error and exits non-zero.

/// sled 0.34 clones and frees whole tree nodes on every write; with glibc's allocator a
/// quarter of a seeding profile was `_int_malloc`. mimalloc nearly doubled revokes/s at 32
/// connections and seeding speed, side by side on the same data (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = match sessiond::config::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(sessiond::config::ParseError::Clap(e)) => e.exit(),
        Err(sessiond::config::ParseError::Config(e)) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    let (format, filter) = cli.logging();
    if let Err(e) = sessiond::config::init_logging(format, &filter) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(err) = runtime.block_on(sessiond::cli::run(cli)) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
