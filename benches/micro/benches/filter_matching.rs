//! Matching one document against 1k, 10k and 100k stored filters of mixed
//! shapes (see `protoplex_micro_benches::filters`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protoplex_core::filter::FilterEngine;
use protoplex_micro_benches::filters::{COLLECTION, INDEX, documents, filters};

const SEED: u64 = 42;
const DOCUMENTS: usize = 256;

fn engine_with(n: usize) -> FilterEngine {
    let mut engine = FilterEngine::default();
    for f in filters(n, SEED) {
        let normalized = engine
            .normalize(INDEX, COLLECTION, &f)
            .expect("generated filters are valid");
        engine.store(normalized);
    }
    engine
}

fn filter_matching(c: &mut Criterion) {
    let docs = documents(DOCUMENTS, SEED);
    let mut group = c.benchmark_group("filter_matching");
    group.throughput(Throughput::Elements(1));
    for n in [1_000, 10_000, 100_000] {
        let engine = engine_with(n);
        let matched: usize = docs
            .iter()
            .map(|d| engine.test(INDEX, COLLECTION, d, None).len())
            .sum();
        println!(
            "{n} filters ({} distinct): {:.1} matches per document",
            engine.len(),
            matched as f64 / DOCUMENTS as f64
        );
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("test_one_document", n), &engine, |b, engine| {
            b.iter(|| {
                i = (i + 1) % DOCUMENTS;
                black_box(engine.test(INDEX, COLLECTION, black_box(&docs[i]), None))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, filter_matching);
criterion_main!(benches);
