//! Where settings come from, and logging. Every setting of `serve` (and `demo`) is a flag, a
//! `SESSIOND_*` environment variable, and a key of the optional TOML file named by
//! `--config`. Precedence, highest first: the command line, the environment, the file, the
//! built-in default.
//!
//! The file is applied by turning its keys into the flags they name and parsing again, so
//! a value from the file goes through exactly the same validation as the flag, and a bad
//! one fails at start with clap's message about that flag, prefixed with the file's name.

use crate::cli::Cli;
use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use std::ffi::OsString;
use std::path::Path;

/// Subcommands that read `--config`.
const WITH_CONFIG: &[&str] = &["serve", "demo"];

/// How a failed parse should end: clap's own errors (including `--help` and `--version`)
/// print and exit as clap does; a configuration file's problems are ordinary errors.
#[derive(Debug)]
pub enum ParseError {
    Clap(clap::Error),
    Config(anyhow::Error),
}

/// Parses the command line, the environment, and the configuration file if one is named.
pub fn parse<I, T>(argv: I) -> Result<Cli, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let matches = Cli::command()
        .try_get_matches_from(&argv)
        .map_err(ParseError::Clap)?;
    let Some((name, sub)) = matches.subcommand() else {
        return Cli::from_arg_matches(&matches).map_err(ParseError::Clap);
    };
    let file = WITH_CONFIG
        .contains(&name)
        .then(|| sub.get_one::<std::path::PathBuf>("config"))
        .flatten();
    let Some(file) = file else {
        return Cli::from_arg_matches(&matches).map_err(ParseError::Clap);
    };
    let settings = file_settings(file, name).map_err(ParseError::Config)?;
    let in_file = |e: clap::Error| {
        // clap's first line names the flag and the value; its usage lines would describe
        // the command line, which is not where the value came from.
        let rendered = e.render().to_string();
        let first = rendered.lines().next().unwrap_or_default().to_owned();
        ParseError::Config(anyhow::anyhow!(
            "in the configuration file {}: {}",
            file.display(),
            first.strip_prefix("error: ").unwrap_or(&first)
        ))
    };
    // Every value of the file is checked, also one the command line or environment
    // overrides: a broken file fails today, not on the day the override goes away.
    let alone: Vec<OsString> = [argv[0].clone(), name.into()]
        .into_iter()
        .chain(
            settings
                .iter()
                .flat_map(|(_, f)| f.iter().map(OsString::from)),
        )
        .collect();
    Cli::command()
        .try_get_matches_from(&alone)
        .map_err(in_file)?;
    let mut merged = argv;
    for (id, flags) in settings {
        if !matches!(
            sub.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            merged.extend(flags.into_iter().map(OsString::from));
        }
    }
    Cli::command()
        .try_get_matches_from(&merged)
        .and_then(|m| Cli::from_arg_matches(&m))
        .map_err(in_file)
}

/// The settings of a configuration file: each as its argument id and the flags it stands for.
fn file_settings(file: &Path, subcommand: &str) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the configuration file {}", file.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("parsing the configuration file {}", file.display()))?;
    let cmd = Cli::command();
    let sub = cmd
        .find_subcommand(subcommand)
        .context("the subcommand that named the file")?;
    let known: Vec<&clap::Arg> = sub
        .get_arguments()
        .filter(|a| {
            a.get_long().is_some()
                && !matches!(a.get_id().as_str(), "config" | "print_config" | "help")
        })
        .collect();
    let mut out = Vec::new();
    for (key, value) in &table {
        let mut flags = Vec::new();
        let id = key.replace('-', "_");
        let Some(arg) = known.iter().find(|a| a.get_id() == id.as_str()) else {
            let names: Vec<&str> = known.iter().filter_map(|a| a.get_long()).collect();
            bail!(
                "in the configuration file {}: unknown setting `{key}` (known: {})",
                file.display(),
                names.join(", ")
            );
        };
        let long = arg.get_long().unwrap_or(key);
        let takes_value = arg.get_action().takes_values();
        let scalar = |v: &toml::Value| -> anyhow::Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => bail!(
                    "in the configuration file {}: `{key}` must be a string, number or boolean, not {}",
                    file.display(),
                    other.type_str()
                ),
            })
        };
        match value {
            toml::Value::Boolean(b) if !takes_value => {
                if *b {
                    flags.push(format!("--{long}"));
                }
            }
            _ if !takes_value => bail!(
                "in the configuration file {}: `{key}` is a switch: write `{key} = true` or `false`",
                file.display()
            ),
            toml::Value::Array(items) => {
                for item in items {
                    flags.push(format!("--{long}={}", scalar(item)?));
                }
            }
            v => flags.push(format!("--{long}={}", scalar(v)?)),
        }
        out.push((id, flags));
    }
    Ok(out)
}

/// The settings `serve` would run with, as a configuration file (`--print-config`): the
/// admin token is never shown, only whether one is set.
pub fn render(args: &crate::cli::ServeArgs) -> anyhow::Result<String> {
    let mut value = toml::Table::try_from(args).context("rendering the settings")?;
    value.remove("config");
    value.remove("print-config");
    if value.contains_key("admin-token") {
        value.insert("admin-token".into(), "<set, not shown>".into());
    }
    Ok(toml::to_string(&value)?)
}

/// Log output: human-readable lines, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber, writing to standard error. `filter` is an `EnvFilter`
/// directive (`info`, `warn`, `sessiond=debug,info`, ...). Records of the `log` crate
/// (sled's, rustls') reach it through [`LogBridge`].
pub fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid --log-level `{filter}`"))?;
    use std::io::IsTerminal;
    let text = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let lines: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> = match format {
        LogFormat::Text => Box::new(text),
        LogFormat::Json => Box::new(
            text.json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        ),
    };
    // The order matters: `MarkLive` sees each event after the lines layer has formatted it.
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(MarkLive);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| anyhow::anyhow!("installing the logger: {e}"))?;
    use tracing_log::AsLog;
    log::set_boxed_logger(Box::new(LogBridge(tracing_log::LogTracer::new())))
        .map_err(|e| anyhow::anyhow!("installing the log bridge: {e}"))?;
    log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    Ok(())
}

/// `tracing-log`'s bridge, except on a thread whose thread-locals are being destroyed.
///
/// sled logs from closures that crossbeam-epoch runs whenever a thread collects garbage,
/// including from a thread-local destructor while the thread exits (a tokio worker at
/// shutdown, an idle blocking thread). By then the fmt layer's own thread-local buffer may
/// be gone, and it panics on it (tokio-rs/tracing#3239), which aborts the process: at
/// `--log-level trace`, one stop in fourteen ended in SIGABRT after a clean flush. Such a
/// record is dropped instead.
struct LogBridge(tracing_log::LogTracer);

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !GONE.get() {
            self.0.log(record);
        }
    }

    fn flush(&self) {}
}

thread_local! {
    /// Set when this thread's log buffer may be gone. Has no destructor, so it can be read
    /// while the others run.
    static GONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// First touched right after the thread's first formatted event, so after the fmt
    /// layer's buffer, and thread-locals are destroyed last-registered first: this one's
    /// destructor runs before that buffer is gone.
    static LIVE: Live = const { Live };
}

struct Live;

impl Drop for Live {
    fn drop(&mut self) {
        GONE.set(true);
    }
}

/// The layer that registers [`LIVE`] on each thread that formats an event.
struct MarkLive;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for MarkLive {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let _ = LIVE.try_with(|_| ());
    }
}

/// A duration setting: `90s`, `15m`, `24h`, `7d`, `1h 30m` or ISO 8601 (`PT24H`); a day is
/// 24 hours. Shown back (`--print-config`) in the same friendly form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Duration, String> {
        let span: jiff::Span = s
            .trim()
            .parse()
            .map_err(|e| format!("`{s}` is not a duration such as 90s, 15m, 24h or 7d ({e})"))?;
        let signed = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|e| format!("`{s}`: {e} (use days, hours, minutes or seconds)"))?;
        std::time::Duration::try_from(signed)
            .map(Duration)
            .map_err(|_| format!("`{s}` is negative"))
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match jiff::SignedDuration::try_from(self.0) {
            Ok(d) if self.0.is_zero() => write!(f, "{}s", d.as_secs()),
            Ok(d) => write!(f, "{d:#}"),
            Err(_) => write!(f, "{}s", self.0.as_secs()),
        }
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Duration;

    #[test]
    fn durations_read_as_people_write_them_and_print_back_the_same() {
        let read = |s: &str| s.parse::<Duration>().map(|d| d.0.as_millis());
        assert_eq!(read("90s"), Ok(90_000));
        assert_eq!(read("24h"), Ok(86_400_000));
        assert_eq!(read("7d"), Ok(7 * 86_400_000));
        assert_eq!(read("1h 30m"), Ok(5_400_000));
        assert_eq!(read("PT2H"), Ok(7_200_000));
        assert_eq!(read("250ms"), Ok(250));
        assert_eq!(read("0s"), Ok(0));
        for bad in ["", "soon", "-5m", "1 month", "3"] {
            assert!(read(bad).is_err(), "{bad} was accepted");
        }
        for s in ["90s", "24h", "7d", "250ms", "0s", "1h 30m"] {
            let d: Duration = s.parse().unwrap();
            let back: Duration = d.to_string().parse().unwrap();
            assert_eq!(back, d, "{s} printed as {d}");
        }
    }
}
