//! What a watermark record's size costs in sled (criterion): sled alone, no sessiond code.
//!
//! A revoke-all reads its pair's watermark record and writes it back. In a store larger
//! than sled's page cache (a million sessions against the default 64 MiB), that is a read
//! of a random leaf and a write into it, and both cost more the more the records weigh:
//! sled copies a leaf's values when it writes one, and the cache holds fewer leaves. This
//! bench gives that cost against the record's size, for the two sizes a Rownd revoke-all's
//! record has had (323 bytes in layout 2, 112 in the compact layout 3, see
//! `src/store/marker_codec.rs`) and two around them.
//!
//! Each size gets a fresh tree of N records with keys of the `markers` shape (28 random
//! bytes), loaded in batches, and a page cache of C: N = 300,000 and C = 16 MiB by default
//! (the records' keys and values alone are 2–6 times the cache; at a million sessions, the
//! watermarks of 500,000 pairs are 1–2.5 times the default 64 MiB, beside the accounts),
//! N = 1,000,000 and C = 64 MiB with `SESSIOND_BENCH_FULL=1`.
//! - `rewrite`: a read of a random record of the N, then an insert over it (a pair's
//!   revoke-all after its first);
//! - `first_write`: then, a read of an absent key and an insert of it (a pair's first
//!   revoke-all: the tree grows by one record each time, so the later iterations run on
//!   a tree larger than N).
//!
//! No flush: these are the CPU and cache costs; the device's are the same for every size
//! to within a few hundred bytes a commit.
//!
//! `cargo bench --bench sled_records`; smoke form for CI: `-- --test`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn full() -> bool {
    std::env::var("SESSIOND_BENCH_FULL").is_ok_and(|v| v == "1")
}

/// Records in each tree, and sled's page cache.
fn shape() -> (usize, u64) {
    if full() {
        (1_000_000, 64 << 20)
    } else {
        (300_000, 16 << 20)
    }
}

const SIZES: [usize; 4] = [80, 112, 200, 323];

/// xorshift64: reproducible keys without a dependency.
struct Keys(u64);

impl Keys {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A `markers`-shaped key: 20 bytes of account, 8 of scope.
    fn key(&mut self) -> [u8; 28] {
        let mut k = [0u8; 28];
        for chunk in k.chunks_mut(8) {
            let n = chunk.len();
            chunk.copy_from_slice(&self.next_u64().to_be_bytes()[..n]);
        }
        k
    }
}

struct Tree {
    tree: sled::Tree,
    /// The keys of the records loaded, to rewrite.
    present: Vec<[u8; 28]>,
    /// Where keys not yet written come from.
    fresh: Keys,
    _db: sled::Db,
    _dir: tempfile::TempDir,
}

fn load(size: usize) -> Tree {
    let (n, cache) = shape();
    let dir = tempfile::Builder::new()
        .prefix("sessiond-bench-records-")
        .tempdir()
        .expect("tempdir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(cache)
        .open()
        .expect("open sled");
    let tree = db.open_tree("markers").expect("tree");
    let value = vec![7u8; size];
    let mut keys = Keys(0x9E37_79B9_7F4A_7C15);
    let mut present = Vec::with_capacity(n);
    let mut batch = sled::Batch::default();
    for i in 0..n {
        let k = keys.key();
        present.push(k);
        batch.insert(&k[..], value.as_slice());
        if (i + 1) % 5_000 == 0 {
            tree.apply_batch(std::mem::take(&mut batch)).expect("load");
        }
    }
    tree.apply_batch(batch).expect("load");
    db.flush().expect("flush");
    Tree {
        tree,
        present,
        fresh: keys,
        _db: db,
        _dir: dir,
    }
}

fn records(c: &mut Criterion) {
    let mut g = c.benchmark_group("records");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    for size in SIZES {
        let mut t = load(size);
        let value = vec![9u8; size];
        let mut pick = Keys(size as u64 | 1);
        g.bench_with_input(BenchmarkId::new("rewrite", size), &size, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let k = t.present[pick.next_u64() as usize % t.present.len()];
                    black_box(t.tree.get(k).expect("get"));
                    t.tree.insert(k, value.as_slice()).expect("insert");
                }
                start.elapsed()
            })
        });
        g.bench_with_input(BenchmarkId::new("first_write", size), &size, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let k = t.fresh.key();
                    black_box(t.tree.get(k).expect("get"));
                    t.tree.insert(k, value.as_slice()).expect("insert");
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
