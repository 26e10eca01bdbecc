//! Criterion benchmark of the pure scoring step (`Engine::ingest`) on the example model,
//! beside decoding and validating the same event from JSON as a baseline.
//! Run: `cargo bench -p ember-scoring` (figures in BENCHMARKS.md).

// `criterion_group!` defines a public function it gives no doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember_scoring::{Engine, Model, RawEvent, Time};
use serde_json::json;
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let text = include_str!("../../../../examples/b2b-saas.yaml");
    let engine = Engine::new(Arc::new(Model::from_yaml_str(text, "b2b-saas.yaml").expect("valid example model")));
    let start: Time = "2026-03-02T09:00:00Z".parse().unwrap();
    let now = start + chrono::Duration::days(3650);
    let texts: Vec<String> = (0..1000)
        .map(|n| {
            let (kind, props) = match n % 5 {
                0 => ("page_view", json!({"path": "/blog/a"})),
                1 => ("page_view", json!({"path": "/pricing"})),
                2 => ("email_open", json!({})),
                3 => ("email_click", json!({})),
                _ => ("download", json!({"content_id": "roi-calculator"})),
            };
            json!({"event_id": format!("e{n}"), "type": kind, "email": "a@b.example", "properties": props,
                   "occurred_at": (start + chrono::Duration::minutes(n)).to_rfc3339()})
            .to_string()
        })
        .collect();
    let events: Vec<_> = texts
        .iter()
        .map(|t| serde_json::from_str::<RawEvent>(t).unwrap().validate(now, || unreachable!()).unwrap())
        .collect();
    let mut g = c.benchmark_group("scoring");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("engine_ingest_1000_events", |b| {
        b.iter(|| {
            let mut lead = engine.new_lead("l", start);
            for e in &events {
                std::hint::black_box(engine.ingest(&mut lead, e));
            }
        })
    });
    g.bench_function("baseline_json_decode_validate_1000_events", |b| {
        b.iter(|| {
            for t in &texts {
                let raw: RawEvent = serde_json::from_str(t).unwrap();
                std::hint::black_box(raw.validate(now, || unreachable!()).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
