//! Configuration mistakes stop `ember dev` at start with a named error: a non-zero exit code, a
//! message naming the setting or file at fault, no panic, and nothing served (no "running" line)
//! before the refusal.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A hash of 64 bytes whose `é` (two bytes) falls where a byte-slicing parser would cut it.
fn multi_byte_hash() -> String {
    format!("sha256:{}é{}", "a".repeat(31), "b".repeat(31))
}

struct Outcome {
    code: Option<i32>,
    output: String,
}

/// Runs `ember dev` on `data` with `envs` until it exits (killed after 20 s: a server that
/// starts on a bad configuration fails the test).
fn run_dev(data: &Path, port: u16, envs: &[(&str, String)]) -> Outcome {
    let mut cmd = ember_testing::dev::dev(crate::EMBER, data, port).into_command();
    cmd.env("RUST_LOG", "info")
        .env("EMBER_UNSUBSCRIBE_SECRET", "config-errors-test-secret")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("ember dev starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut output).expect("read stdout");
    child.stderr.take().expect("stderr").read_to_string(&mut output).expect("read stderr");
    let Some(status) = status else { panic!("ember dev kept running on a bad configuration:\n{output}") };
    Outcome { code: status.code(), output }
}

fn assert_refused(o: &Outcome, names: &[&str]) {
    assert!(
        matches!(o.code, Some(c) if c != 0 && c != 101 && c != 134),
        "a named error exits with a plain failure code, not a panic or a signal: {:?}\n{}",
        o.code,
        o.output
    );
    assert!(!o.output.contains("panicked"), "no panic:\n{}", o.output);
    assert!(!o.output.contains("ember dev is running"), "nothing is served before the refusal:\n{}", o.output);
    for n in names {
        assert!(o.output.contains(n), "the error names `{n}`:\n{}", o.output);
    }
}

#[test]
fn a_multi_byte_character_in_the_keys_file_is_a_named_error() {
    let data = tempfile::tempdir().unwrap();
    let keys = serde_json::json!({
        "write": format!("{}@*", multi_byte_hash()),
        "admin": ember_http::auth::hash_entry("ek_a_whatever"),
        "crm_secret": "whsec_ZGV2LXNlcnZlci10ZXN0LWNybS1zZWNyZXQ=",
    });
    std::fs::write(data.path().join("keys.json"), keys.to_string()).unwrap();
    let o = run_dev(data.path(), 18611, &[]);
    assert_refused(&o, &["keys.json", "EMBER_WRITE_KEYS, entry 1", "not a hex digit"]);
}

#[test]
fn a_multi_byte_character_in_a_key_setting_is_a_named_error() {
    let data = tempfile::tempdir().unwrap();
    let o = run_dev(data.path(), 18612, &[("EMBER_ADMIN_KEYS", multi_byte_hash())]);
    assert_refused(&o, &["EMBER_ADMIN_KEYS, entry 1", "not a hex digit"]);
}

#[test]
fn a_malformed_crm_secret_is_a_named_error() {
    let data = tempfile::tempdir().unwrap();
    let envs = [
        ("EMBER_ADMIN_KEYS", ember_http::auth::hash_entry("ek_a_whatever")),
        ("EMBER_CRM_SECRET", "whsec_not*base64é".to_string()),
    ];
    let o = run_dev(data.path(), 18613, &envs);
    assert_refused(&o, &["EMBER_CRM_SECRET", "whsec_"]);
    assert!(!o.output.contains("not*base64"), "the error never repeats a secret:\n{}", o.output);
}

#[test]
fn an_unreadable_keys_file_is_a_named_error() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("keys.json"), "{\"write\": \"sha256:é").unwrap();
    let o = run_dev(data.path(), 18614, &[]);
    assert_refused(&o, &["keys.json", "corrupt"]);
}
