//! The `sessiond` binary: logging, the command line, and the one place that prints an
//! error and exits non-zero.

/// sled 0.34 clones and frees whole tree nodes on every write, and its page cache replaces
/// nodes all the time. With glibc's allocator a quarter of a seeding profile was
/// `_int_malloc`; mimalloc, which replaced it, was as fast as jemalloc but held on to the
/// memory that churn frees: after the same revocations its peak RSS was 1.3–1.7× jemalloc's,
/// at about three times the live heap. Side by side in BENCHMARKS.md ("The allocator, for
/// memory").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
