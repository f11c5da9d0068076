//! Replays every input under `fuzz/regressions/<target>/` through the same checks the
//! cargo-fuzz targets run (`fuzz/src/lib.rs`, compiled here by path), on stable and without
//! libFuzzer. A crash found by fuzzing becomes a regression test by copying its input
//! (`fuzz/artifacts/<target>/crash-…`) into the target's directory there, with the fix.
//! `client_auth/iat-i64-min-overflow` is the first: an `iat` of i64::MIN overflowed the
//! lifetime check (a panic in debug builds, a skipped 60 s limit in release builds).

#[allow(dead_code)] // `fixture()` is for the fuzz targets; this test builds its own
#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The inputs of one target under `fuzz/<set>/`: every file in its directory except
/// dotfiles (`.gitkeep`).
fn inputs(set: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(set)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

fn replay(set: &str, target: &str, check: impl Fn(&[u8])) {
    for path in inputs(set, target) {
        let data = std::fs::read(&path).expect("read input");
        // A panic names the input that caused it.
        eprintln!("{target}: {}", path.display());
        check(&data);
    }
}

fn replay_all(set: &str) {
    let fixture = checks::Fixture::open();
    replay(set, "jwt_split", |d| checks::jwt_split(&fixture, d));
    replay(set, "client_auth", |d| checks::client_auth(&fixture, d));
    replay(set, "ids", checks::ids);
    replay(set, "codec", checks::codec);
    replay(set, "keys", checks::keys);
    let http = checks::HttpFixture::open();
    replay(set, "http", |d| checks::http(&http, d));
}

#[test]
fn fuzz_regressions_replay() {
    replay_all("regressions");
}

/// The targets replayed above. A new target fails this test until it is added there.
const TARGETS: [&str; 6] = ["client_auth", "codec", "http", "ids", "jwt_split", "keys"];

#[test]
fn every_target_is_replayed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found: Vec<String> = std::fs::read_dir(root.join("fuzz/fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .filter_map(|e| {
            let path = e.expect("directory entry").path();
            Some(path.file_stem()?.to_str()?.to_owned())
        })
        .collect();
    found.sort();
    assert_eq!(found, TARGETS);
    for t in TARGETS {
        let dir = root.join("fuzz/regressions").join(t);
        assert!(dir.is_dir(), "no {}", dir.display());
    }
}
