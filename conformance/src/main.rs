//! `sessiond-conformance`: run the suite against a base URL.

use clap::Parser;
use sessiond_conformance::Args;

#[tokio::main]
async fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let mut out = std::io::stdout();
    let code = sessiond_conformance::run(args.into_options(), &mut out).await;
    std::process::exit(code);
}
