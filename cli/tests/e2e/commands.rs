//! `ember validate` and `ember scenario run` as a user runs them.

use crate::ember;
use std::path::Path;

#[test]
fn validate_reports_every_mistake_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("broken.yaml");
    std::fs::write(
        &model,
        r#"
name: broken
scores:
  engagement: { min: 0, max: 100 }
rules:
  - id: a
    on: page_view
    points: { engagemnt: 5 }
  - id: b
    on: email_open
    points: { engagement: 2 }
    cap: { points: 10, per: 3mo }
stages:
  - { id: lead, when: { identified: true } }
email: { from: "a@b.example" }
templates:
  hello: { subject: Hi, html: "<p>hi</p>" }
campaigns:
  - id: c
    enter: { on: page_view }
    steps:
      - send: helo
      - if: { stage_at_least: leed }
        then: advancd
"#,
    )
    .unwrap();
    let out = ember().arg("validate").arg(&model).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "rules[0].points.engagemnt: `engagemnt` is not a score group (known: engagement)",
        "rules[1].cap.per: `3mo` is not a duration",
        "campaigns[0].steps[0].send: unknown template `helo`",
        "campaigns[0].steps[1].if.stage_at_least: `leed` is not a stage",
        "campaigns[0].steps[1].then: `then` jumps to unknown step id `advancd`",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    assert!(err.contains("5 errors"), "{err}");
    assert!(err.lines().filter(|l| l.contains("broken.yaml: ")).count() >= 5);

    let ok = ember().args(["validate", "examples/b2b-saas.yaml"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn scenario_run_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/b2b-saas.yaml");
    let file = dir.path().join("wrong.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
scenario: wrong on purpose
model: {}
start: 2026-03-02T09:00:00Z
steps:
  - event: {{ type: demo_request, email: ana@x.example }}
  - expect: {{ lead: ana@x.example, scores: {{ engagement: 99 }}, stage: mql, webhooks: [lead.sla_breached] }}
  - expect: {{ lead: nobody@x.example, stage: lead }}
"#,
            models.display()
        ),
    )
    .unwrap();
    let out = ember().args(["scenario", "run"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL"), "{text}");
    assert!(text.contains("scores.engagement: expected 99, got 20"), "{text}");
    assert!(text.contains("stage: expected mql, got sql"), "{text}");
    assert!(text.contains("webhooks: expected [lead.sla_breached], got [lead.qualified]"), "{text}");
    assert!(text.contains("lead nobody@x.example: not found"), "{text}");
    assert!(text.contains("0 passed, 1 failed"), "{text}");
}

#[test]
fn scenario_event_steps_check_their_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/b2b-saas.yaml");
    let file = dir.path().join("outcomes.yaml");
    let write = |steps: &str| {
        std::fs::write(&file, format!("scenario: outcomes\nmodel: {}\nstart: 2026-03-02T09:00:00Z\nsteps:\n{steps}", models.display())).unwrap()
    };
    // Each step says what it expects; two are wrong on purpose.
    write(
        r#"
  - event: { event_id: e1, type: page_view, email: ana@x.example }
  - event: { event_id: e1, type: page_view, email: ana@x.example }
    outcome: duplicate
  - event: { type: email_bounced, email: ana@x.example }
    outcome: rejected
  - event: { event_id: e2, type: page_view, email: ana@x.example }
    outcome: duplicate
  - event: { type: ember.crm.won, email: ana@x.example }
"#,
    );
    let out = ember().args(["scenario", "run"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("steps[3]: event: expected outcome duplicate, got accepted"), "{text}");
    assert!(text.contains("steps[4]: event: expected outcome accepted, got rejected: `type` `ember.crm.won` is recorded only by Ember itself"), "{text}");
    assert!(!text.contains("steps[1]") && !text.contains("steps[2]"), "{text}");

    // A misspelt outcome, or one on a step that is not an event, is a named mistake.
    write("  - event: { type: page_view, email: ana@x.example }\n    outcome: acepted\n");
    let out = ember().args(["scenario", "run"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("steps[0]: `outcome`: `acepted` is not an outcome (accepted, duplicate, rejected)"), "{text}");
    write("  - tick: true\n    outcome: rejected\n");
    let out = ember().args(["scenario", "run"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("`outcome` belongs to an `event` step"), "{text}");
}

/// `ember webhooks replay --data DIR`: a delivery that failed for good is sent again with the
/// same webhook id and a fresh, valid signature, and leaves the queue.
#[test]
fn webhooks_replay_sends_dead_letters_again() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let letter = serde_json::json!({
        "delivery": {"hook": "crm", "url": null, "id": "msg_dead_1", "timestamp": 1, "signature": "", "kind": "lead.qualified",
                     "lead_id": "ld_1", "body": "{\"type\":\"lead.qualified\",\"data\":{}}"},
        "error": "HTTP 503", "at": "2026-03-02T09:00:00Z"});
    std::fs::write(dir.path().join("dead-letters.jsonl"), format!("{letter}\n")).unwrap();
    // A one-shot receiver that answers 204 and hands back what it got.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        (head, String::from_utf8(body).unwrap())
    });
    let secret = "whsec_cmVwbGF5LXRlc3Qtc2VjcmV0LTEyMzQ1Njc4";
    let out = ember()
        .args(["webhooks", "replay", "--model", "examples/b2b-saas.yaml", "--data"])
        .arg(dir.path())
        .env("CRM_WEBHOOK_URL", &url)
        .env("CRM_WEBHOOK_SECRET", secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 delivered"), "{stdout}");
    let (head, body) = server.join().unwrap();
    let header = |n: &str| {
        head.lines().find_map(|l| l.to_ascii_lowercase().starts_with(n).then(|| l[n.len() + 1..].trim().to_string())).unwrap_or_default()
    };
    assert_eq!(header("webhook-id"), "msg_dead_1");
    let now = chrono::Utc::now().timestamp();
    ember_service::signing::verify(secret, "msg_dead_1", &header("webhook-timestamp"), &header("webhook-signature"), &body, now, 300)
        .expect("re-signed with a fresh timestamp");
    let left = ember_delivery::FileDeadLetters::new(dir.path().join("dead-letters.jsonl"));
    assert!(left.is_empty().unwrap(), "the queue is empty: {:?}", std::fs::read_to_string(left.path()));
}

#[test]
fn model_diff_names_what_changed_by_id_with_old_and_new_values() {
    let dir = tempfile::tempdir().unwrap();
    let old = Path::new("examples/b2b-saas.yaml");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(old)).unwrap();
    let new = dir.path().join("new.yaml");
    std::fs::write(&new, text.replace("sla: 24h", "sla: 48h").replace("  - id: pricing-page\n", "  - id: pricing-visit\n")).unwrap();
    let out = ember().args(["model", "diff"]).arg(old).arg(&new).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("rules\n  + pricing-visit\n  - pricing-page\n"), "{stdout}");
    assert!(stdout.contains("handoff\n  ~ handoff\n      sla: \"24h\" → \"48h\"\n"), "{stdout}");
    assert!(stdout.contains("1 added, 1 removed, 1 changed"), "{stdout}");

    let out = ember().args(["model", "diff", "--json"]).arg(old).arg(&new).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let handoff = v["sections"].as_array().unwrap().iter().find(|s| s["section"] == "handoff").expect("handoff section");
    assert_eq!(handoff["changed"][0]["fields"][0], serde_json::json!({"path": "sla", "old": "24h", "new": "48h"}));

    let same = ember().args(["model", "diff"]).arg(old).arg(old).output().unwrap();
    assert!(String::from_utf8_lossy(&same.stdout).contains("no difference"));

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, text.replace("sla: 24h", "sla: soon")).unwrap();
    let out = ember().args(["model", "diff"]).arg(old).arg(&broken).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("broken.yaml: the model is invalid") && stderr.contains("handoff.sla"), "{stderr}");
}
