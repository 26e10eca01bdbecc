//! `ember bench --dynamodb`: what ingest and the sweeps cost on DynamoDB, counted rather than
//! timed (a local stand-in's latency says nothing about AWS's; its request counts and item
//! sizes are the same):
//!
//! - **ingest**: SDK round trips (every HTTP attempt, by an interceptor) and write units per
//!   event, for a warm container (identity hints cached) beside a cold one (every identity
//!   looked up) on the same events — the baseline of the same run;
//! - **sweeps**: index entries a decay sweep and a drip sweep read, against the number of leads
//!   due, for a small and a large table with the same 1 % due — the figure must not grow with
//!   the table.
//!
//! Runs against the endpoint of the standard AWS environment (`AWS_ENDPOINT_URL`, e.g. a moto
//! server from `scripts/moto`), on fresh tables it deletes afterwards.

use super::sample_event;
use crate::local::ScenarioHarness;
use anyhow::{Context, Result};
use ember_store_dynamodb::DynamoStore;
use ember_scoring::{Engine, Lead, Model, RawEvent, Time};
use ember_service::ports::{Commit, DueKind, Store};
use serde_json::{Value, json};
use std::sync::Arc;

/// Options (a subset of `ember bench`'s).
pub struct Options {
    /// Leads for the ingest measurement.
    pub leads: usize,
    /// Steady-state events per lead after each lead's first.
    pub events_per_lead: usize,
    /// Table sizes for the sweep measurement.
    pub sweep_sizes: Vec<usize>,
}

async fn fresh_table(client: &aws_sdk_dynamodb::Client) -> Result<String> {
    let table = format!("ember-bench-{}", uuid::Uuid::new_v4().simple());
    ember_store_dynamodb::create_table(client, &table).await.map_err(|e| anyhow::anyhow!("creating table {table}: {e}"))?;
    Ok(table)
}

/// Counters of one store between two points.
#[derive(Clone, Copy, Default)]
struct Snapshot {
    calls: u64,
    read_units: f64,
    write_units: f64,
    estimated_write_units: f64,
    counter_write_units: f64,
}

fn snap(s: &DynamoStore) -> Snapshot {
    let (r, w) = s.consumed();
    Snapshot {
        calls: s.calls(),
        read_units: r,
        write_units: w,
        estimated_write_units: s.estimated_write_units(),
        counter_write_units: s.estimated_counter_write_units(),
    }
}

/// Ingests `raws` one by one; returns per-event round trips and the totals.
async fn ingest_all(h: &ScenarioHarness, store: &DynamoStore, raws: &[RawEvent]) -> Result<(Vec<u64>, Snapshot)> {
    let before = snap(store);
    let mut per_event = Vec::with_capacity(raws.len());
    for raw in raws {
        let c0 = store.calls();
        let status = h.services().ingest.event(raw).await;
        anyhow::ensure!(status.is_accepted(), "bench event not accepted: {status:?}");
        per_event.push(store.calls() - c0);
    }
    let after = snap(store);
    Ok((
        per_event,
        Snapshot {
            calls: after.calls - before.calls,
            read_units: after.read_units - before.read_units,
            write_units: after.write_units - before.write_units,
            estimated_write_units: after.estimated_write_units - before.estimated_write_units,
            counter_write_units: after.counter_write_units - before.counter_write_units,
        },
    ))
}

fn summary(per_event: &[u64], total: Snapshot) -> Value {
    let n = per_event.len().max(1) as f64;
    let mut sorted = per_event.to_vec();
    sorted.sort_unstable();
    let at = |p: f64| sorted.get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize).copied().unwrap_or(0);
    json!({
        "events": per_event.len(),
        "round_trips_per_event": (total.calls as f64 / n * 100.0).round() / 100.0,
        "round_trips_p50": at(0.5), "round_trips_max": sorted.last().copied().unwrap_or(0),
        "events_at_2_round_trips_or_fewer": per_event.iter().filter(|c| **c <= 2).count(),
        "reported_rcu_per_event": (total.read_units / n * 100.0).round() / 100.0,
        "reported_wcu_per_event": (total.write_units / n * 100.0).round() / 100.0,
        "estimated_wcu_per_event": (total.estimated_write_units / n * 100.0).round() / 100.0,
        // Report counter items (`Update … ADD`) inside those transactions: the cost of reports.
        "estimated_counter_wcu_per_event": (total.counter_write_units / n * 100.0).round() / 100.0,
    })
}

/// Measures ingest: a warm container and a cold one on the same kind of traffic.
async fn ingest(conf: &aws_config::SdkConfig, model: Arc<Model>, o: &Options, start: Time) -> Result<Value> {
    let client = aws_sdk_dynamodb::Client::new(conf);
    let table = fresh_table(&client).await?;
    let store = DynamoStore::new(client.clone(), table.clone());
    let dir = tempfile::tempdir()?;
    // The harness clock ("received at") is after every event time.
    let clock = start + chrono::Duration::days(3650);
    let warm = ScenarioHarness::with_store(model.clone(), Arc::new(store.clone()), dir.path(), clock)?;
    let leads = o.leads.max(1);
    let event = |i: usize, n: usize| -> Result<RawEvent> {
        let at = start + chrono::Duration::minutes((n * 37 + i % 13) as i64);
        let mut v = sample_event(i, n, at);
        v["anonymous_id"] = json!(format!("cookie-{i}"));
        Ok(serde_json::from_value(v)?)
    };
    // Each lead's first event creates it (claims, stage "lead"): not the steady state.
    let first: Vec<RawEvent> = (0..leads).map(|i| event(i, 0)).collect::<Result<_>>()?;
    let (first_calls, first_total) = ingest_all(&warm, &store, &first).await?;
    // Then every lead comes back, with its email and its cookie, as the tracker sends them.
    let mut steady = Vec::new();
    for n in 1..=o.events_per_lead {
        for i in 0..leads {
            steady.push(event(i, n)?);
        }
    }
    let half = steady.len() / 2;
    let (warm_calls, warm_total) = ingest_all(&warm, &store, &steady[..half]).await?;
    // A cold container (another process: no identity hints) on the same table and traffic.
    let cold_dir = tempfile::tempdir()?;
    let cold = ScenarioHarness::with_store(model, Arc::new(store.clone()), cold_dir.path(), clock)?;
    let (cold_calls, cold_total) = ingest_all(&cold, &store, &steady[half..]).await?;
    let by_op = store.calls_by_operation();
    client.delete_table().table_name(&table).send().await.ok();
    Ok(json!({
        "first_event_per_lead": summary(&first_calls, first_total),
        "steady_warm_container": summary(&warm_calls, warm_total),
        "steady_cold_container_baseline": summary(&cold_calls, cold_total),
        "calls_by_operation_all_phases": by_op,
    }))
}

/// Builds `size` leads, 1 % of them with decay and drip work due at `now`, straight through
/// the engine and one commit each; then sweeps both kinds and counts what the sweeps read.
async fn sweep(conf: &aws_config::SdkConfig, model: Arc<Model>, size: usize, now: Time) -> Result<Value> {
    let client = aws_sdk_dynamodb::Client::new(conf);
    let table = fresh_table(&client).await?;
    let store = DynamoStore::new(client.clone(), table.clone());
    let engine = Engine::new(model.clone());
    let due_every = 100;
    let mut due = 0usize;
    for i in 0..size {
        let is_due = i % due_every == 0;
        due += usize::from(is_due);
        // Due leads subscribed 100 days ago and were quiet since: decay (after 90 days) is due,
        // and so is the welcome email. The others: a page view yesterday, not subscribed.
        let (kind, at) =
            if is_due { ("newsletter_subscribe", now - chrono::Duration::days(100)) } else { ("page_view", now - chrono::Duration::days(1)) };
        let mut lead: Lead = engine.new_lead(format!("ld_bench_{i}"), now - chrono::Duration::days(200));
        lead.email = Some(format!("sweep{i}@bench.example"));
        let raw: RawEvent = serde_json::from_value(json!({
            "event_id": format!("sweep-{i}"), "type": kind, "occurred_at": at.to_rfc3339(),
            "email": format!("sweep{i}@bench.example"), "properties": {"path": "/blog/x"},
        }))?;
        let ev = raw.validate(now, || unreachable!("ids are given")).map_err(anyhow::Error::msg)?;
        engine.ingest(&mut lead, &ev);
        lead.outbox.clear();
        // No report counters: they are not what is measured here, and without them each lead
        // is one conditional write rather than a transaction (moto copies the whole table for
        // every transaction, which makes seeding 10,000 leads take hours there).
        let commit =
            Commit { due: engine.due(&lead), lead, expected_version: None, events: vec![], claims: vec![], retire: None, release: None, tallies: vec![] };
        store.commit(commit).await.with_context(|| format!("creating lead {i}"))?;
    }
    let dir = tempfile::tempdir()?;
    let h = ScenarioHarness::with_store(model, Arc::new(store.clone()), dir.path(), now)?;
    let go = || true;
    let mut out = json!({"leads": size, "due": due});
    // Drip first: decay takes the due leads below the campaign's exit threshold, which ends
    // their enrollment (and its due step) before the drip sweep would see it.
    for (name, kind) in [("drip", DueKind::Drip), ("decay", DueKind::Decay)] {
        let c0 = store.calls();
        let r = h.services().jobs.run_kind(kind, now, &go).await;
        out[name] = json!({
            "index_entries_read": r.read, "processed": r.processed, "failed": r.failed,
            "read_per_due": (r.read as f64 / due.max(1) as f64 * 1000.0).round() / 1000.0,
            "round_trips": store.calls() - c0,
        });
    }
    client.delete_table().table_name(&table).send().await.ok();
    Ok(out)
}

/// Runs the ingest and sweep measurements (counted, not timed) against the DynamoDB stand-in at
/// `AWS_ENDPOINT_URL`; returns `{"ingest": …, "sweeps": […]}`.
pub async fn run(model: Arc<Model>, o: Options) -> Result<Value> {
    std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()).context(
        "the DynamoDB benchmark runs against a local stand-in: set AWS_ENDPOINT_URL (e.g. `export AWS_ENDPOINT_URL=$(scripts/moto)`)",
    )?;
    let conf = ember_aws::sdk_config().await;
    let start: Time = "2026-03-02T09:00:00Z".parse()?;
    let ingest = ingest(&conf, model.clone(), &o, start).await?;
    let now: Time = "2026-09-01T09:00:00Z".parse()?;
    let mut sweeps = Vec::new();
    for size in &o.sweep_sizes {
        sweeps.push(sweep(&conf, model.clone(), *size, now).await?);
    }
    Ok(json!({"ingest": ingest, "sweeps": sweeps}))
}
