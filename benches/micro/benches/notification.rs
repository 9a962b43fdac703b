//! Serializing one document notification, per channel, against the baseline of
//! serializing its `_source` alone with serde_json.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use protoplex_core::ChannelName;
use protoplex_core::realtime::notification::{DocumentContent, DocumentNotification, per_channel};
use serde_json::json;

fn notification(c: &mut Criterion) {
    let source = json!({"device": "sensor-42", "temperature": 21.5, "position": {"lat": 43.6, "lon": 3.88},
                        "tags": ["kitchen", "ground-floor"]});
    let volatile = json!({"sdkName": "js@7.11.0"});
    let volatile = volatile.as_object();
    let make = || DocumentNotification {
        status: 200,
        kind: "document",
        controller: "realtime",
        action: "publish",
        event: "publish",
        scope: "in",
        index: "iot",
        collection: "sensors",
        protocol: "mqtt",
        timestamp: 1_795_000_000_000,
        volatile,
        node: "protoplex-0a1b2c3d",
        request_id: "7c0e7a5e-6b5e-4d7c-9f1e-1b2c3d4e5f60",
        result: DocumentContent {
            id: Some("doc-1"),
            source: &source,
        },
    };
    let one: Vec<ChannelName> = vec!["8f14e45fceea167a5a36dedd4bea2543-311".into()];
    let ten: Vec<ChannelName> = (0..10)
        .map(|n| format!("8f14e45fceea167a5a36dedd4bea25{n:02}-311").into())
        .collect();

    let mut group = c.benchmark_group("notification");
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline: serde_json::to_vec(_source)", |b| {
        b.iter(|| serde_json::to_vec(black_box(&source)))
    });
    group.bench_function("1 channel", |b| b.iter(|| per_channel(black_box(&make()), &one)));
    group.throughput(Throughput::Elements(10));
    group.bench_function("10 channels", |b| {
        b.iter(|| per_channel(black_box(&make()), &ten))
    });
    group.finish();
}

criterion_group!(benches, notification);
criterion_main!(benches);
