//! The results: every timed run, a row per concurrency (median and range over the
//! repetitions), printed as a Markdown table, written as JSON, and drawn as an SVG chart of
//! throughput and p99 against concurrency.

use crate::load::{Measured, Tally};
use crate::probe::Probe;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

/// One group of workers in one timed run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// `revoke`, `ceiling`, `check` or `refresh`.
    pub what: String,
    /// Connections of the revoke (or ceiling) workers in this run.
    pub concurrency: usize,
    /// Connections of this group.
    pub connections: usize,
    pub repetition: usize,
    pub ok: u64,
    pub seconds: f64,
    pub per_sec: f64,
    pub latency: Latency,
    pub errors: BTreeMap<String, u64>,
    /// A worker ran out of things to send before the deadline (the data set was too small).
    pub ran_dry: bool,
}

impl Run {
    pub fn new(
        what: &str,
        concurrency: usize,
        connections: usize,
        repetition: usize,
        t: &Tally,
        m: &Measured,
    ) -> Run {
        let h = &t.hist;
        let secs = m.elapsed.as_secs_f64();
        Run {
            what: what.to_owned(),
            concurrency,
            connections,
            repetition,
            ok: t.ok,
            seconds: secs,
            per_sec: if secs > 0.0 { t.ok as f64 / secs } else { 0.0 },
            latency: Latency {
                p50_us: h.value_at_quantile(0.5),
                p90_us: h.value_at_quantile(0.9),
                p99_us: h.value_at_quantile(0.99),
                p999_us: h.value_at_quantile(0.999),
                max_us: h.max(),
                mean_us: h.mean(),
            },
            errors: t.errors.clone(),
            ran_dry: t.ran_dry,
        }
    }
}

/// Median and range over the repetitions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// One concurrency, summarised over its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub concurrency: usize,
    pub revokes_per_sec: Spread,
    pub p50_us: f64,
    pub p99_us: Spread,
    pub ceiling_per_sec: Option<Spread>,
    /// Median revokes/s over median ceiling requests/s.
    pub fraction_of_ceiling: Option<f64>,
    pub checks_per_sec: Option<Spread>,
    pub check_p99_us: Option<Spread>,
    pub refreshes_per_sec: Option<Spread>,
    pub refresh_p99_us: Option<Spread>,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    pub accounts: usize,
    pub applications: usize,
    pub sessions_per_pair: usize,
    pub sessions: usize,
    pub session_kind: String,
    /// Seeding through the provisioning protocol (untimed for the figures).
    pub seeded_per_sec: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub label: String,
    pub target: String,
    pub shape: crate::shapes::Shape,
    pub dataset: Dataset,
    pub seconds_per_run: f64,
    pub repetitions: usize,
    pub fsync_probe_before: Option<Probe>,
    pub fsync_probe_after: Option<Probe>,
    pub rows: Vec<Row>,
    pub runs: Vec<Run>,
}

pub fn rows(runs: &[Run], concurrencies: &[usize]) -> Vec<Row> {
    let pick = |what: &str, c: usize, f: &dyn Fn(&Run) -> f64| -> Option<Spread> {
        Spread::of(
            runs.iter()
                .filter(|r| r.what == what && r.concurrency == c)
                .map(f)
                .collect(),
        )
    };
    concurrencies
        .iter()
        .filter_map(|&c| {
            let revokes = pick("revoke", c, &|r| r.per_sec)?;
            let ceiling = pick("ceiling", c, &|r| r.per_sec);
            Some(Row {
                concurrency: c,
                revokes_per_sec: revokes,
                p50_us: pick("revoke", c, &|r| r.latency.p50_us as f64)?.median,
                p99_us: pick("revoke", c, &|r| r.latency.p99_us as f64)?,
                fraction_of_ceiling: ceiling
                    .filter(|s| s.median > 0.0)
                    .map(|s| revokes.median / s.median),
                ceiling_per_sec: ceiling,
                checks_per_sec: pick("check", c, &|r| r.per_sec),
                check_p99_us: pick("check", c, &|r| r.latency.p99_us as f64),
                refreshes_per_sec: pick("refresh", c, &|r| r.per_sec),
                refresh_p99_us: pick("refresh", c, &|r| r.latency.p99_us as f64),
                errors: runs
                    .iter()
                    .filter(|r| r.concurrency == c && r.what != "ceiling")
                    .map(|r| r.errors.values().sum::<u64>())
                    .sum(),
            })
        })
        .collect()
}

/// `12345.6` → `12,346`.
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Microseconds, shown as µs below 1 ms and as ms above.
pub fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn probe_text(p: &Option<Probe>) -> String {
    match p {
        Some(p) => format!(
            "{}/s (p50 {}, p99 {})",
            thousands(p.fsyncs_per_sec),
            micros(p.p50_us as f64),
            micros(p.p99_us as f64)
        ),
        None => "not run".into(),
    }
}

/// The Markdown table and its caption.
pub fn table(r: &Report) -> String {
    let d = &r.dataset;
    let mut s = format!(
        "{} — {:?} revoke-all against {}\n\
         data set: {} {} sessions ({} accounts × {} applications × {}), seeded at {}/s\n\
         {} × {} s per point; fsync probe before: {}; after: {}\n\n",
        r.label,
        r.shape,
        r.target,
        thousands(d.sessions as f64),
        d.session_kind,
        thousands(d.accounts as f64),
        d.applications,
        d.sessions_per_pair,
        thousands(d.seeded_per_sec),
        r.repetitions,
        r.seconds_per_run,
        probe_text(&r.fsync_probe_before),
        probe_text(&r.fsync_probe_after),
    );
    let mix = r
        .rows
        .iter()
        .any(|x| x.checks_per_sec.is_some() || x.refreshes_per_sec.is_some());
    s.push_str("| connections | revokes/s median [min–max] | p50 | p99 median [min–max] | ceiling req/s | of ceiling |");
    if mix {
        s.push_str(" checks/s (p99) | refreshes/s (p99) |");
    }
    s.push_str(" errors |\n|---:|---|---:|---|---:|---:|");
    if mix {
        s.push_str("---|---|");
    }
    s.push_str("---:|\n");
    for x in &r.rows {
        let sp = |v: &Spread| {
            format!(
                "{} [{}–{}]",
                thousands(v.median),
                thousands(v.min),
                thousands(v.max)
            )
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} [{}–{}] | {} | {} |",
            x.concurrency,
            sp(&x.revokes_per_sec),
            micros(x.p50_us),
            micros(x.p99_us.median),
            micros(x.p99_us.min),
            micros(x.p99_us.max),
            x.ceiling_per_sec
                .map_or("–".into(), |c| thousands(c.median)),
            x.fraction_of_ceiling
                .map_or("–".into(), |f| format!("{:.1}%", f * 100.0)),
        ));
        if mix {
            let pair = |n: Option<Spread>, p: Option<Spread>| match (n, p) {
                (Some(n), Some(p)) => format!("{} ({})", thousands(n.median), micros(p.median)),
                _ => "–".into(),
            };
            s.push_str(&format!(
                " {} | {} |",
                pair(x.checks_per_sec, x.check_p99_us),
                pair(x.refreshes_per_sec, x.refresh_p99_us)
            ));
        }
        s.push_str(&format!(" {} |\n", x.errors));
    }
    let dry: Vec<String> = r
        .runs
        .iter()
        .filter(|x| x.ran_dry && x.what == "revoke")
        .map(|x| format!("{} connections, repetition {}", x.concurrency, x.repetition))
        .collect();
    if !dry.is_empty() {
        s.push_str(&format!(
            "\nran out of live targets before the deadline in: {} (a larger data set measures longer)\n",
            dry.join("; ")
        ));
    }
    let mut errs: BTreeMap<&str, u64> = BTreeMap::new();
    for x in &r.runs {
        for (k, v) in &x.errors {
            *errs.entry(k.as_str()).or_default() += v;
        }
    }
    if !errs.is_empty() {
        s.push_str(&format!("\nunexpected answers: {errs:?}\n"));
        if errs.contains_key("429") {
            s.push_str(
                "429s: the target rate-limits one credential; for sessiond start it with \
                 --credential-limit-per-minute 0 (Okta tokens get their own limit from the load generator)\n",
            );
        }
    }
    s
}

/// Throughput (revokes and the ceiling) and p99 against concurrency, side by side.
pub fn svg(r: &Report, path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let xs: Vec<f64> = r.rows.iter().map(|x| x.concurrency as f64).collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min).max(1.0) / 1.5,
        xs.iter().copied().fold(1.0, f64::max) * 1.5,
    );
    let top = r
        .rows
        .iter()
        .map(|x| {
            x.ceiling_per_sec
                .map_or(x.revokes_per_sec.max, |c| c.max.max(x.revokes_per_sec.max))
        })
        .fold(1.0, f64::max)
        * 1.1;
    let title = format!("{} ({:?})", r.label, r.shape);
    let mut c = ChartBuilder::on(&left)
        .caption(format!("{title}: requests/s"), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), 0f64..top)?;
    c.configure_mesh()
        .x_desc("connections")
        .y_desc("per second")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| thousands(*v))
        .draw()?;
    let revokes: Vec<(f64, f64)> = r
        .rows
        .iter()
        .map(|x| (x.concurrency as f64, x.revokes_per_sec.median))
        .collect();
    c.draw_series(LineSeries::new(revokes.clone(), BLUE.stroke_width(2)))?
        .label("revoke-all (median)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    c.draw_series(revokes.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))?;
    let ceiling: Vec<(f64, f64)> = r
        .rows
        .iter()
        .filter_map(|x| x.ceiling_per_sec.map(|s| (x.concurrency as f64, s.median)))
        .collect();
    if !ceiling.is_empty() {
        c.draw_series(LineSeries::new(ceiling.clone(), BLACK.mix(0.5)))?
            .label("ceiling: trivial endpoint")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.5)));
        c.draw_series(
            ceiling
                .iter()
                .map(|&p| Circle::new(p, 3, BLACK.mix(0.5).filled())),
        )?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;

    let p99: Vec<(f64, f64)> = r
        .rows
        .iter()
        .map(|x| (x.concurrency as f64, x.p99_us.median / 1000.0))
        .collect();
    let ptop = r
        .rows
        .iter()
        .map(|x| x.p99_us.max / 1000.0)
        .fold(0.1, f64::max)
        * 1.1;
    let mut c = ChartBuilder::on(&right)
        .caption("revoke-all p99 latency", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((x0..x1).log_scale(), 0f64..ptop)?;
    c.configure_mesh()
        .x_desc("connections")
        .y_desc("ms")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    c.draw_series(LineSeries::new(p99.clone(), RED.stroke_width(2)))?;
    c.draw_series(p99.iter().map(|&p| Circle::new(p, 3, RED.filled())))?;
    root.present()?;
    Ok(())
}
