//! `sessiond-peers`: PostgreSQL and Redis doing sessiond's core job — revoke every refresh
//! token of one (account, application) pair — driven the way `sessiond bench --shape rownd`
//! drives sessiond, so the three reports can be set side by side (`sessiond-peers compare`).
//!
//! The method is `peer-baselines.md`'s: the same data set, targets drawn without repetition
//! from a seeded permutation, what a run deleted put back untimed, repetitions interleaved
//! across concurrencies, an fsync probe before and after.

mod bench;
mod compare;
mod pg;
mod rd;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "sessiond-peers", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Per-app revoke as `DELETE … RETURNING` on PostgreSQL (drops and reloads table `tokens`).
    Postgres {
        /// libpq-style connection string, e.g. "host=127.0.0.1 port=5432 user=postgres dbname=peers".
        #[arg(long)]
        url: String,
        #[command(flatten)]
        common: Common,
    },
    /// Per-app revoke as one EVALSHA (SMEMBERS + DEL) on Redis.
    Redis {
        /// e.g. redis://127.0.0.1:6379
        #[arg(long)]
        url: String,
        /// Empty the database first (without it, a non-empty database is refused).
        #[arg(long)]
        flushdb: bool,
        #[command(flatten)]
        common: Common,
    },
    /// One Markdown table from several reports (`sessiond bench --json` and the peers').
    Compare(compare::Args),
}

/// What every peer run takes; the names and defaults are `sessiond bench`'s (the schedule
/// is the same struct).
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Accounts in the data set.
    #[arg(long, default_value_t = 100_000)]
    pub accounts: usize,
    /// Applications; every account has tokens in each.
    #[arg(long, default_value_t = 5)]
    pub apps: usize,
    /// Refresh tokens of each (account, application) pair.
    #[arg(long, default_value_t = 2)]
    pub tokens_per_pair: usize,
    /// Also time a trivial round trip (`SELECT 1`, `PING`) over the same connections before
    /// each revoke run: the client's and the protocol's own ceiling.
    #[arg(long)]
    pub ceiling: bool,
    /// Name of the system in the report; its durability settings, read from the server, are
    /// appended (default: the server's name and version).
    #[arg(long)]
    pub label: Option<String>,
    #[command(flatten)]
    pub schedule: sessiond_loadgen::Schedule,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Postgres { url, common } => bench::run(bench::System::Postgres(url), common).await,
        Command::Redis {
            url,
            flushdb,
            common,
        } => bench::run(bench::System::Redis { url, flushdb }, common).await,
        Command::Compare(args) => compare::run(&args).map(|()| true),
    };
    match result {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("some revokes did not delete exactly the pair's tokens (see the table)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
