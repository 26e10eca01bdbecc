//! Load and soak: `ember dev` (the real binary, a real SQLite file, jobs every second) under
//! concurrent clients on loopback for a bounded time. Each client sends single events for leads
//! of a fixed pool (so the data a lead holds stays bounded) and, every 20th request, one of
//! its earlier events again (which must come back `duplicate`). The test prints throughput,
//! latency percentiles and the server's resident memory (`VmRSS` from `/proc`, sampled every
//! 500 ms), and fails on any error or when memory grows by more than the bound after warm-up.
//!
//! ```text
//! cargo test -p ember --test e2e -- soak:: --include-ignored --nocapture   # 60 s, 16 clients
//! scripts/soak --seconds 600 --clients 32 [--release]             # a longer run
//! ```
//!
//! Variables: `EMBER_SOAK_SECONDS` (60), `EMBER_SOAK_CLIENTS` (16), `EMBER_SOAK_RSS_GROWTH_MIB`
//! (the bound, 32), `EMBER_SOAK_LEADS` (pool size, 500).


use ember_testing::dev::{rss_kib, RELIABILITY};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn var(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        _ => default,
    }
}

#[derive(Default)]
struct ClientFigures {
    latencies_us: Vec<u64>,
    errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute of load on ember dev: run by scripts/soak and by scripts/test (--include-ignored)"]
async fn soak_under_concurrent_clients_has_no_errors_and_flat_memory() {
    use rand::{Rng, SeedableRng};
    let seconds = var("EMBER_SOAK_SECONDS", 60);
    let clients = var("EMBER_SOAK_CLIENTS", 16);
    let bound_mib = var("EMBER_SOAK_RSS_GROWTH_MIB", 32);
    let pool = var("EMBER_SOAK_LEADS", 500);
    let data = tempfile::tempdir().unwrap();
    let dev = ember_testing::dev::reliability(crate::EMBER, data.path(), None, &[]).await;
    let pid = dev.pid();
    let base = dev.base();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let warmup = Duration::from_secs((seconds / 5).max(5));

    // Memory, sampled every 500 ms: (seconds since start, KiB).
    let samples: Arc<Mutex<Vec<(f64, u64)>>> = Default::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, done) = (samples.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                if let Some(kib) = rss_kib(pid) {
                    samples.lock().unwrap().push((started.elapsed().as_secs_f64(), kib));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(c);
            let mut figures = ClientFigures::default();
            let mut sent: Vec<Value> = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let again = n % 20 == 0 && !sent.is_empty();
                let event = if again {
                    sent[rng.gen_range(0..sent.len())].clone()
                } else {
                    let lead = rng.gen_range(0..pool);
                    let path = ["/pricing", "/blog/a", "/docs", "/"][rng.gen_range(0..4)];
                    json!({"event_id": format!("soak-{c}-{n}"), "type": "page_view", "email": format!("soak-{lead}@load.example"),
                        "properties": {"path": path}})
                };
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(RELIABILITY.write)
                    .header("content-type", "application/json")
                    .body(event.to_string())
                    .send()
                    .await;
                let outcome = match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        let want = if again { "duplicate" } else { "accepted" };
                        if status == 202 && body[want] == 1 { Ok(()) } else { Err(format!("{status} {body} (expected {want})")) }
                    }
                    Err(e) => Err(e.to_string()),
                };
                figures.latencies_us.push(t.elapsed().as_micros() as u64);
                match outcome {
                    Ok(()) if !again => sent.push(event),
                    Ok(()) => {}
                    Err(e) => figures.errors.push(e),
                }
            }
            figures
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let f = t.await.expect("client");
        latencies.extend(f.latencies_us);
        errors.extend(f.errors);
    }
    let elapsed = started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    drop(dev);

    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    let samples = samples.lock().unwrap().clone();
    let at_warmup = samples.iter().filter(|(t, _)| *t <= warmup.as_secs_f64()).map(|(_, k)| *k).max().unwrap_or(0);
    let peak_after = samples.iter().filter(|(t, _)| *t > warmup.as_secs_f64()).map(|(_, k)| *k).max().unwrap_or(0);
    let last = samples.last().map(|(_, k)| *k).unwrap_or(0);
    let growth_kib = peak_after.saturating_sub(at_warmup);
    println!(
        "soak: {clients} clients, {elapsed:.0} s, {} requests, {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {}; RSS after {} s warm-up {} MiB, peak after {} MiB, last {} MiB, growth {:.1} MiB (bound {bound_mib} MiB)",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        errors.len(),
        warmup.as_secs(),
        at_warmup / 1024,
        peak_after / 1024,
        last / 1024,
        growth_kib as f64 / 1024.0,
    );
    assert!(samples.len() > 4, "RSS was not sampled (is /proc mounted?)");
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
    assert!(growth_kib <= bound_mib * 1024, "memory grew by {} KiB after warm-up (bound {bound_mib} MiB)", growth_kib);
}
