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

/// jemalloc's options, read before its first allocation (tikv-jemalloc-sys prefixes every
/// jemalloc symbol with `_rjem_`; `_RJEM_MALLOC_CONF` in the environment overrides these).
/// One arena for every thread, instead of jemalloc's default of four per CPU: sled's churn
/// of node copies leaves partly filled pages in each arena, and at a million sessions half
/// the resident memory was such pages. Under the peers' churn the peak fell from 582–660 MiB
/// to 419–462 MiB; on two cores, alternating runs could not tell its CPU per revoke from the
/// default's (BENCHMARKS.md, "jemalloc's arenas").
/// On many cores, `_RJEM_MALLOC_CONF=percpu_arena:percpu` gives an arena to each.
#[allow(unsafe_code)] // C's `const char *malloc_conf`: a thin pointer to NUL-ended text
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 10] = b"narenas:1\0";

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
