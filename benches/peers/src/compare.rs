//! `sessiond-peers compare`: one Markdown table out of several reports — sessiond's from
//! `sessiond bench --json`, the peers' from this program — with sessiond's throughput and p99
//! as ratios to each peer's, at each concurrency.

use anyhow::Context;
use sessiond_loadgen::probe::Probe;
use sessiond_loadgen::report::{Report, Spread, micros, thousands};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Reports to set side by side (`sessiond bench --json`, `sessiond-peers … --json`).
    #[arg(long = "json", num_args = 1.., required = true)]
    pub json: Vec<PathBuf>,
    /// Label of the report the ratios are about (exact, or the one label it begins).
    /// Default: the first label beginning with "sessiond", else the first report.
    #[arg(long, alias = "baseline")]
    pub subject: Option<String>,
}

/// `a / b` for medians, with the widest range the two ranges allow: a's worst over b's best
/// to a's best over b's worst.
pub fn ratio(a: Spread, b: Spread) -> Option<Spread> {
    if b.median <= 0.0 || b.min <= 0.0 || b.max <= 0.0 {
        return None;
    }
    Some(Spread {
        median: a.median / b.median,
        min: a.min / b.max,
        max: a.max / b.min,
    })
}

fn spread(s: Spread) -> String {
    format!(
        "{} [{}–{}]",
        thousands(s.median),
        thousands(s.min),
        thousands(s.max)
    )
}

fn times(s: Option<Spread>) -> String {
    s.map_or("–".into(), |r| {
        format!("{:.2}× [{:.2}–{:.2}]", r.median, r.min, r.max)
    })
}

fn probe(p: &Option<Probe>) -> String {
    p.map_or("not run".into(), |p| {
        format!(
            "{}/s (p50 {})",
            thousands(p.fsyncs_per_sec),
            micros(p.p50_us as f64)
        )
    })
}

/// Which report the ratios are about.
pub fn pick_subject(reports: &[Report], subject: Option<&str>) -> anyhow::Result<usize> {
    let Some(want) = subject else {
        return Ok(reports
            .iter()
            .position(|r| r.label.starts_with("sessiond"))
            .unwrap_or(0));
    };
    if let Some(i) = reports.iter().position(|r| r.label == want) {
        return Ok(i);
    }
    let prefixed: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].label.starts_with(want))
        .collect();
    match prefixed.as_slice() {
        [i] => Ok(*i),
        [] => anyhow::bail!("no report is labelled {want:?}"),
        _ => anyhow::bail!("several reports' labels begin with {want:?}"),
    }
}

/// The comparison as Markdown.
pub fn table(reports: &[Report], subject: usize) -> String {
    let s = &reports[subject];
    let mut out = format!(
        "## Per-app revoke-all: {} against its peers\n\n\
         Each point: {} × {} s, repetitions interleaved across concurrencies; revokes/s is the \
         median [min–max] over the repetitions, p99 the median of their p99s. \
         \"{name} ÷\" columns: {name}'s median over the system's, and in brackets the widest \
         the two ranges allow ({name}'s worst over the system's best, and the reverse). \
         A revokes/s ratio above 1 and a p99 ratio below 1 favour {name}.\n\n",
        s.label,
        s.repetitions,
        s.seconds_per_run,
        name = s.label,
    );
    let mut concurrencies: Vec<usize> = reports
        .iter()
        .flat_map(|r| r.rows.iter().map(|x| x.concurrency))
        .collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    out.push_str(&format!(
        "| c | system | revokes/s median [min–max] | p50 | p99 median [min–max] | {0} ÷ system, revokes/s | {0} ÷ system, p99 | of own ceiling | errors |\n\
         |---:|---|---|---:|---|---|---|---|---:|\n",
        s.label
    ));
    for c in concurrencies {
        let mine = s.rows.iter().find(|x| x.concurrency == c);
        for (i, r) in reports.iter().enumerate() {
            let Some(x) = r.rows.iter().find(|x| x.concurrency == c) else {
                continue;
            };
            let (by_rate, by_p99) = match mine {
                Some(m) if i != subject => (
                    times(ratio(m.revokes_per_sec, x.revokes_per_sec)),
                    times(ratio(m.p99_us, x.p99_us)),
                ),
                _ => ("–".into(), "–".into()),
            };
            let ceiling = match (x.fraction_of_ceiling, x.ceiling_per_sec) {
                (Some(f), Some(cs)) => {
                    format!("{:.1}% of {}/s", f * 100.0, thousands(cs.median))
                }
                _ => "–".into(),
            };
            out.push_str(&format!(
                "| {c} | {} | {} | {} | {} [{}–{}] | {by_rate} | {by_p99} | {ceiling} | {} |\n",
                r.label,
                spread(x.revokes_per_sec),
                micros(x.p50_us),
                micros(x.p99_us.median),
                micros(x.p99_us.min),
                micros(x.p99_us.max),
                x.errors,
            ));
        }
    }
    out.push_str(
        "\n| system | target | shape | tokens (accounts × apps × per pair) | loaded at | fsync probe before | fsync probe after |\n\
         |---|---|---|---|---:|---|---|\n",
    );
    for r in reports {
        let d = &r.dataset;
        out.push_str(&format!(
            "| {} | {} | {} | {} ({} × {} × {}) | {}/s | {} | {} |\n",
            r.label,
            r.target,
            r.shape,
            thousands(d.sessions as f64),
            thousands(d.accounts as f64),
            d.applications,
            d.sessions_per_pair,
            thousands(d.seeded_per_sec),
            probe(&r.fsync_probe_before),
            probe(&r.fsync_probe_after),
        ));
    }
    let differs: Vec<&str> = reports
        .iter()
        .filter(|r| {
            (
                r.dataset.accounts,
                r.dataset.applications,
                r.dataset.sessions_per_pair,
                r.repetitions,
            ) != (
                s.dataset.accounts,
                s.dataset.applications,
                s.dataset.sessions_per_pair,
                s.repetitions,
            ) || r.seconds_per_run != s.seconds_per_run
                || r.shape != s.shape
        })
        .map(|r| r.label.as_str())
        .collect();
    if !differs.is_empty() {
        out.push_str(&format!(
            "\n**Not like for like:** the data set, shape or timing of {} differs from {}'s.\n",
            differs.join(", "),
            s.label
        ));
    }
    out
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let reports = args
        .json
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str::<Report>(&text)
                .with_context(|| format!("parsing {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let subject = pick_subject(&reports, args.subject.as_deref())?;
    println!("{}", table(&reports, subject));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiond_loadgen::report::{Dataset, Row};
    use sessiond_loadgen::shapes::Shape;

    fn sp(median: f64, min: f64, max: f64) -> Spread {
        Spread { median, min, max }
    }

    fn report(label: &str, rate: Spread, p99: Spread, ceiling: Option<Spread>) -> Report {
        Report {
            label: label.into(),
            target: "t".into(),
            shape: Shape::Rownd,
            dataset: Dataset {
                accounts: 100,
                applications: 5,
                sessions_per_pair: 2,
                sessions: 1000,
                session_kind: "refresh-token".into(),
                seeded_per_sec: 1000.0,
            },
            seconds_per_run: 5.0,
            repetitions: 3,
            fsync_probe_before: None,
            fsync_probe_after: None,
            rows: vec![Row {
                concurrency: 8,
                revokes_per_sec: rate,
                p50_us: 100.0,
                p99_us: p99,
                fraction_of_ceiling: ceiling.map(|c| rate.median / c.median),
                ceiling_per_sec: ceiling,
                checks_per_sec: None,
                check_p99_us: None,
                refreshes_per_sec: None,
                refresh_p99_us: None,
                errors: 0,
            }],
            runs: vec![],
        }
    }

    #[test]
    fn ratio_of_medians_with_the_widest_range() {
        let r = ratio(
            sp(10_000.0, 9_000.0, 12_000.0),
            sp(5_000.0, 4_000.0, 6_000.0),
        )
        .expect("positive denominators");
        assert_eq!(r.median, 2.0);
        assert_eq!(r.min, 1.5);
        assert_eq!(r.max, 3.0);
    }

    #[test]
    fn ratio_needs_a_positive_denominator() {
        assert!(ratio(sp(1.0, 1.0, 1.0), sp(0.0, 0.0, 0.0)).is_none());
        assert!(ratio(sp(1.0, 1.0, 1.0), sp(5.0, 0.0, 6.0)).is_none());
    }

    #[test]
    fn table_shows_ratios_to_each_peer_and_the_ceiling() {
        let reports = vec![
            report(
                "PostgreSQL 15 (synchronous_commit=on, fsync=on)",
                sp(4_000.0, 4_000.0, 4_000.0),
                sp(1_000.0, 1_000.0, 1_000.0),
                None,
            ),
            report(
                "sessiond (fsync)",
                sp(8_000.0, 8_000.0, 8_000.0),
                sp(500.0, 500.0, 500.0),
                Some(sp(80_000.0, 80_000.0, 80_000.0)),
            ),
        ];
        let subject = pick_subject(&reports, None).expect("a sessiond report");
        assert_eq!(subject, 1);
        let t = table(&reports, subject);
        assert!(t.contains("2.00× [2.00–2.00] | 0.50× [0.50–0.50]"), "{t}");
        assert!(t.contains("10.0% of 80,000/s"), "{t}");
        assert!(!t.contains("Not like for like"), "{t}");
    }

    #[test]
    fn subject_by_exact_label_or_unique_prefix() {
        let one = sp(1.0, 1.0, 1.0);
        let reports = vec![
            report("Redis 7.0.15 (appendonly=yes)", one, one, None),
            report("Redis 7.0.15 (no AOF)", one, one, None),
            report("sessiond (fsync)", one, one, None),
        ];
        assert_eq!(pick_subject(&reports, Some("sessiond")).ok(), Some(2));
        assert_eq!(
            pick_subject(&reports, Some("Redis 7.0.15 (no AOF)")).ok(),
            Some(1)
        );
        assert!(pick_subject(&reports, Some("Redis")).is_err());
        assert!(pick_subject(&reports, Some("PostgreSQL")).is_err());
    }
}
