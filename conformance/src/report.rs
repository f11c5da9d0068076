//! Output: a `cargo test`-like listing (default), JSON, TAP, and a JUnit XML file. Failures
//! carry the document line the case checks and what differed.

use crate::CoverageItem;
use crate::case::{Case, Level};
use crate::runner::{CaseResult, Outcome};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Tap,
}

/// How one case ended, once the divergence file is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    /// Failed, and declared as a known divergence.
    ExpectedFailure,
    /// Passed although declared as a known divergence.
    UnexpectedPass,
    /// The target could not be reached or provisioned.
    Error,
}

pub fn verdict(c: &Case, r: &CaseResult, expect_fail: &BTreeSet<String>) -> Verdict {
    let declared = expect_fail.contains(&c.id);
    match (&r.outcome, declared) {
        (Outcome::Error(_), _) => Verdict::Error,
        (Outcome::Pass, false) => Verdict::Passed,
        (Outcome::Pass, true) => Verdict::UnexpectedPass,
        (Outcome::Fail(_), false) => Verdict::Failed,
        (Outcome::Fail(_), true) => Verdict::ExpectedFailure,
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LevelCounts {
    pub passed: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub expected_failures: usize,
    pub unexpected_passes: usize,
    pub errors: usize,
    pub documented: LevelCounts,
    pub sessiond: LevelCounts,
    /// Coverage items exercised by the cases that ran (and passed or failed).
    pub covered: Vec<String>,
    pub not_covered: Vec<String>,
    pub coverage_total: usize,
}

impl Summary {
    pub fn of(
        results: &[(Case, CaseResult)],
        expect_fail: &BTreeSet<String>,
        items: &[CoverageItem],
    ) -> Summary {
        let mut s = Summary {
            passed: 0,
            failed: 0,
            expected_failures: 0,
            unexpected_passes: 0,
            errors: 0,
            documented: LevelCounts::default(),
            sessiond: LevelCounts::default(),
            covered: Vec::new(),
            not_covered: Vec::new(),
            coverage_total: items.len(),
        };
        let mut exercised = BTreeSet::new();
        for (c, r) in results {
            let level = match c.level {
                Level::Documented => &mut s.documented,
                Level::Sessiond => &mut s.sessiond,
            };
            match verdict(c, r, expect_fail) {
                Verdict::Passed => {
                    s.passed += 1;
                    level.passed += 1;
                }
                Verdict::Failed => {
                    s.failed += 1;
                    level.failed += 1;
                }
                Verdict::ExpectedFailure => s.expected_failures += 1,
                Verdict::UnexpectedPass => s.unexpected_passes += 1,
                Verdict::Error => {
                    s.errors += 1;
                    s.failed += 1;
                    level.failed += 1;
                }
            }
            exercised.extend(c.covers.iter().cloned());
        }
        for item in items {
            if exercised.contains(&item.id) {
                s.covered.push(item.id.clone());
            } else {
                s.not_covered.push(item.id.clone());
            }
        }
        s
    }
}

pub fn write(
    format: Format,
    results: &[(Case, CaseResult)],
    ef: &BTreeSet<String>,
    s: &Summary,
    out: &mut dyn Write,
) {
    match format {
        Format::Human => human(results, ef, s, out),
        Format::Json => {
            let cases: Vec<_> = results
                .iter()
                .map(|(c, r)| {
                    json!({
                        "id": c.id, "shape": c.shape, "level": c.level, "title": c.title,
                        "source": c.source,
                        "verdict": format!("{:?}", verdict(c, r, ef)).to_lowercase(),
                        "failures": failures(r),
                        "elapsed_ms": r.elapsed.as_millis() as u64,
                    })
                })
                .collect();
            let _ = writeln!(out, "{}", json!({"cases": cases, "summary": s}));
        }
        Format::Tap => {
            let _ = writeln!(out, "TAP version 13\n1..{}", results.len());
            for (i, (c, r)) in results.iter().enumerate() {
                let v = verdict(c, r, ef);
                let ok = matches!(
                    v,
                    Verdict::Passed | Verdict::ExpectedFailure | Verdict::UnexpectedPass
                );
                let directive = match v {
                    Verdict::ExpectedFailure => " # TODO known divergence",
                    Verdict::UnexpectedPass => " # TODO declared divergence passed",
                    _ => "",
                };
                let _ = writeln!(
                    out,
                    "{} {} - {}{directive}",
                    if ok { "ok" } else { "not ok" },
                    i + 1,
                    c.id
                );
                let f = failures(r);
                if !f.is_empty() {
                    let _ = writeln!(out, "  ---\n  source: {:?}\n  failures:", c.source);
                    for m in f {
                        let _ = writeln!(out, "    - {:?}", m);
                    }
                    let _ = writeln!(out, "  ...");
                }
            }
            let _ = writeln!(out, "# {} passed, {} failed", s.passed, s.failed);
        }
    }
}

fn failures(r: &CaseResult) -> Vec<String> {
    match &r.outcome {
        Outcome::Pass => Vec::new(),
        Outcome::Fail(f) => f.clone(),
        Outcome::Error(e) => vec![e.clone()],
    }
}

fn human(results: &[(Case, CaseResult)], ef: &BTreeSet<String>, s: &Summary, out: &mut dyn Write) {
    let _ = writeln!(out, "running {} cases", results.len());
    for (c, r) in results {
        let v = verdict(c, r, ef);
        let word = match v {
            Verdict::Passed => "ok",
            Verdict::Failed => "FAILED",
            Verdict::ExpectedFailure => "known divergence (failed as declared)",
            Verdict::UnexpectedPass => "ok, but declared as a divergence",
            Verdict::Error => "ERROR",
        };
        let level = match c.level {
            Level::Documented => "documented",
            Level::Sessiond => "sessiond",
        };
        let _ = writeln!(out, "case {} [{level}] ... {word}", c.id);
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|(c, r)| matches!(verdict(c, r, ef), Verdict::Failed | Verdict::Error))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nfailures:");
        for (c, r) in failed {
            let _ = writeln!(
                out,
                "\n---- {} ----\n  {}\n  checks: {}",
                c.id, c.title, c.source
            );
            for m in failures(r) {
                let _ = writeln!(out, "  - {}", m.replace('\n', "\n    "));
            }
        }
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            100.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    let _ = writeln!(
        out,
        "\nlevels: documented {} passed, {} failed; sessiond readings {} passed, {} failed",
        s.documented.passed, s.documented.failed, s.sessiond.passed, s.sessiond.failed
    );
    if s.expected_failures + s.unexpected_passes > 0 {
        let _ = writeln!(
            out,
            "declared divergences: {} failed as declared, {} passed anyway",
            s.expected_failures, s.unexpected_passes
        );
    }
    let _ = writeln!(
        out,
        "coverage: {}/{} documented statuses and rules exercised ({:.0}%)",
        s.covered.len(),
        s.coverage_total,
        pct(s.covered.len(), s.coverage_total)
    );
    if !s.not_covered.is_empty() {
        let _ = writeln!(out, "  not exercised: {}", s.not_covered.join(", "));
    }
    let _ = writeln!(out, "\n{} passed, {} failed", s.passed, s.failed);
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A JUnit XML report (one testsuite per shape).
pub fn junit(results: &[(Case, CaseResult)], ef: &BTreeSet<String>) -> String {
    let mut shapes: Vec<&str> = results.iter().map(|(c, _)| c.shape.as_str()).collect();
    shapes.dedup();
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"sessiond-conformance\">\n",
    );
    for shape in shapes {
        let of: Vec<_> = results.iter().filter(|(c, _)| c.shape == shape).collect();
        let failed = of
            .iter()
            .filter(|(c, r)| matches!(verdict(c, r, ef), Verdict::Failed | Verdict::Error))
            .count();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">\n",
            xml_escape(shape),
            of.len()
        ));
        for (c, r) in of {
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
                xml_escape(shape),
                xml_escape(&c.id),
                r.elapsed.as_secs_f64()
            ));
            match verdict(c, r, ef) {
                Verdict::Failed | Verdict::Error => x.push_str(&format!(
                    "<failure message=\"{}\">{}</failure>",
                    xml_escape(&c.source),
                    xml_escape(&failures(r).join("\n"))
                )),
                Verdict::ExpectedFailure => x.push_str("<skipped message=\"known divergence\"/>"),
                _ => {}
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn case(id: &str, level: &str) -> Case {
        let mut c: Case = serde_json::from_value(json!({
            "title": format!("title of {id}"),
            "level": level,
            "source": "seeds/x.txt: section",
            "covers": ["a.1"],
            "steps": [{"request": {"method": "GET", "path": "/"}, "expect": {"status": 200}}],
        }))
        .expect("a valid case");
        c.id = id.into();
        c.shape = "okta".into();
        c
    }

    fn results() -> Vec<(Case, CaseResult)> {
        let r = |outcome| CaseResult {
            outcome,
            elapsed: Duration::from_millis(5),
        };
        vec![
            (case("okta/pass", "documented"), r(Outcome::Pass)),
            (
                case("okta/fail", "documented"),
                r(Outcome::Fail(vec![
                    "status: expected 204, got 200 <&>".into(),
                ])),
            ),
            (
                case("okta/known", "sessiond"),
                r(Outcome::Fail(vec!["x".into()])),
            ),
        ]
    }

    fn items() -> Vec<CoverageItem> {
        serde_json::from_value(json!([
            {"id": "a.1", "shape": "okta", "level": "documented", "what": "one"},
            {"id": "a.2", "shape": "okta", "level": "documented", "what": "two"},
        ]))
        .expect("items")
    }

    fn render(format: Format) -> String {
        let ef: BTreeSet<String> = ["okta/known".to_owned()].into();
        let rs = results();
        let s = Summary::of(&rs, &ef, &items());
        let mut out = Vec::new();
        write(format, &rs, &ef, &s, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn human_output_names_the_document_and_ends_with_the_counts() {
        let h = render(Format::Human);
        assert!(h.contains("case okta/pass [documented] ... ok"), "{h}");
        assert!(h.contains("case okta/fail [documented] ... FAILED"), "{h}");
        assert!(h.contains("known divergence"), "{h}");
        assert!(h.contains("checks: seeds/x.txt: section"), "{h}");
        assert!(h.contains("expected 204, got 200"), "{h}");
        assert!(h.contains("coverage: 1/2"), "{h}");
        assert!(h.contains("not exercised: a.2"), "{h}");
        assert!(h.trim_end().ends_with("1 passed, 1 failed"), "{h}");
    }

    #[test]
    fn json_tap_and_junit_carry_the_same_verdicts() {
        let j: serde_json::Value =
            serde_json::from_str(&render(Format::Json)).expect("one JSON document");
        let verdicts: Vec<_> = j["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| c["verdict"].clone())
            .collect();
        assert_eq!(
            verdicts,
            [json!("passed"), json!("failed"), json!("expectedfailure")]
        );
        assert_eq!(j["summary"]["failed"], 1);
        let tap = render(Format::Tap);
        assert!(tap.starts_with("TAP version 13\n1..3\n"), "{tap}");
        assert!(tap.contains("ok 1 - okta/pass"), "{tap}");
        assert!(tap.contains("not ok 2 - okta/fail"), "{tap}");
        assert!(tap.contains("ok 3 - okta/known # TODO"), "{tap}");
        let ef: BTreeSet<String> = ["okta/known".to_owned()].into();
        let x = junit(&results(), &ef);
        assert!(x.contains("tests=\"3\" failures=\"1\""), "{x}");
        assert!(x.contains("&lt;&amp;&gt;"), "failure text is escaped: {x}");
        assert!(x.contains("<skipped"), "{x}");
    }
}
