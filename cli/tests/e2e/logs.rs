//! No PII in logs: every scenario runs with debug-level JSON logs, and every log line is
//! scanned for the emails and names the scenarios use. That run, through `ember scenario run`
//! as users run it, is the test suite's one run of the scenario files on the embedded store
//! (`scripts/test` runs them on DynamoDB). Then `ember dev` gets the same
//! treatment over HTTP (events, CRM feedback, erasure).

use ember_testing::dev::{dev, free_port, Keys};
use ember_testing::root;
use serde_json::{json, Value};
use std::path::PathBuf;

fn scenario_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [root().join("tests/scenarios"), root().join("../shared/scenarios")] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "yaml") {
                    files.push(e.path());
                }
            }
        }
    }
    files.sort();
    files
}

/// Every email and personal name in a YAML document: values of `email` / `lead` keys that look
/// like addresses, and of name-like trait keys.
fn personal_values(v: &serde_norway::Value, out: &mut Vec<String>) {
    match v {
        serde_norway::Value::Mapping(m) => {
            for (k, val) in m {
                let key = k.as_str().unwrap_or("");
                if let Some(s) = val.as_str() {
                    let is_email = s.contains('@') && (key == "email" || key == "lead");
                    let is_name = matches!(key, "first_name" | "last_name" | "name" | "full_name") && s.len() >= 3;
                    if is_email || is_name {
                        out.push(s.to_lowercase());
                        if let Some((local, _)) = s.split_once('@') {
                            out.push(format!("{}@", local.to_lowercase()));
                        }
                    }
                }
                personal_values(val, out);
            }
        }
        serde_norway::Value::Sequence(items) => items.iter().for_each(|i| personal_values(i, out)),
        _ => {}
    }
}

/// Whether `needle` occurs in `hay` as a whole word (a short name like "Ada" inside a hex id
/// is not a hit; an email is found anywhere).
fn holds(hay: &str, needle: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
    hay.match_indices(needle).any(|(i, _)| {
        needle.contains('@') || (!word(hay[..i].chars().next_back()) && !word(hay[i + needle.len()..].chars().next()))
    })
}

fn assert_no_pii(logs: &str, needles: &[String], what: &str) {
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{what}: no log line to scan (is logging on?)");
    for line in &lines {
        assert!(serde_json::from_str::<Value>(line).is_ok(), "{what}: a log line is not JSON: {line}");
        let lower = line.to_lowercase();
        for n in needles {
            assert!(!holds(&lower, n), "{what}: a log line holds `{n}`: {line}");
        }
    }
    eprintln!("{what}: {} JSON log lines, {} personal values, no hit", lines.len(), needles.len());
}

#[test]
fn scenario_logs_hold_no_email_or_name() {
    let files = scenario_files();
    assert!(files.len() >= 10, "the scenarios are found: {files:?}");
    let mut needles = Vec::new();
    for f in &files {
        let doc: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        personal_values(&doc, &mut needles);
    }
    needles.sort();
    needles.dedup();
    assert!(needles.len() >= 10, "the scenarios use emails and names: {needles:?}");
    let out = crate::ember()
        .args(["scenario", "run"])
        .args(&files)
        .env("RUST_LOG", "debug")
        .env("EMBER_LOG_FORMAT", "json")
        .output()
        .expect("ember scenario run");
    assert!(out.status.success(), "the scenarios pass:\n{}", String::from_utf8_lossy(&out.stdout));
    assert_no_pii(&String::from_utf8_lossy(&out.stderr), &needles, "ember scenario run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_server_logs_hold_no_email_or_name() {
    let data = tempfile::tempdir().unwrap();
    let logs = data.path().join("dev.log");
    let write = "ek_w_log-test-write-key";
    let admin = "ek_a_log-test-admin-key";
    let keys = Keys { write, origin: None, admin, crm: None, unsubscribe: None };
    let mut dev = dev(crate::EMBER, &data.path().join("data"), free_port()).keys(&keys);
    dev.command()
        .args(["--tick-every", "1s"])
        .env("RUST_LOG", "debug")
        .env("EMBER_LOG_FORMAT", "json")
        .stderr(std::fs::File::create(&logs).unwrap());
    let mut dev = dev.start().await;
    let base = dev.base();
    let c = reqwest::Client::new();
    let people = [("Octavia", "Brightwater", "octavia.brightwater@logtest.example"), ("Mortimer", "Quill", "m.quill@logtest.example")];
    for (i, (first, last, email)) in people.iter().enumerate() {
        let batch = json!({"batch": [
            {"event_id": format!("log-{i}-a"), "type": "page_view", "anonymous_id": format!("cookie-log-{i}"), "properties": {"path": "/pricing"}},
            {"event_id": format!("log-{i}-b"), "type": "form_submit", "email": email, "anonymous_id": format!("cookie-log-{i}"),
             "traits": {"first_name": first, "last_name": last, "job_title": "CMO", "company_size": 700, "country": "FR", "newsletter_opt_in": true}},
            {"event_id": format!("log-{i}-c"), "type": "demo_request", "email": email},
            {"event_id": format!("log-{i}-d"), "type": "Not A Type", "email": email},
        ]});
        let r = c.post(format!("{base}/v1/events")).bearer_auth(write).json(&batch).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    let r = c.get(format!("{base}/v1/leads?email={}", people[0].2)).bearer_auth(admin).send().await.unwrap();
    let lead: Value = r.json().await.unwrap();
    let id = lead["id"].as_str().expect("the lead exists").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await; // scheduled jobs run (drip, SLA)
    let r = c.delete(format!("{base}/v1/leads/{id}")).bearer_auth(admin).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    dev.kill9();
    let mut needles = Vec::new();
    for (first, last, email) in people {
        needles.extend([first.to_lowercase(), last.to_lowercase(), email.to_string(), email.split('@').next().unwrap().to_string() + "@"]);
    }
    assert_no_pii(&std::fs::read_to_string(&logs).unwrap(), &needles, "ember dev");
}
