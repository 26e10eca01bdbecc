//! `ember dev` as a child process for the crash and soak tests: started on a loopback port of
//! the harness range (18800–18899) over a data folder, killed with SIGKILL, restarted on the
//! same folder and port.

#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Keys of the test server (configured as hashes, like in production).
pub const WRITE_KEY: &str = "ek_w_reliability-test-write-key";
pub const ADMIN_KEY: &str = "ek_a_reliability-test-admin-key";

/// A running `ember dev`.
pub struct Dev {
    pub child: Child,
    pub port: u16,
    pub data: PathBuf,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// Starts `ember dev` on `data` (port: `port`, else a free one of the range), with the
    /// example model, jobs every second, and `env` added (e.g. `FAILPOINTS`); waits until it
    /// answers.
    pub async fn start(data: &Path, port: Option<u16>, env: &[(&str, &str)]) -> Dev {
        let port = port.unwrap_or_else(|| ember_faults::ports::free().expect("a free port in 18800-18899"));
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
        cmd.args(["dev", "--tick-every", "1s", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .current_dir(&root)
            .env("RUST_LOG", "error")
            .env("EMBER_WRITE_KEYS", ember_http::auth::hash_entry(WRITE_KEY))
            .env("EMBER_ADMIN_KEYS", ember_http::auth::hash_entry(ADMIN_KEY))
            .env("EMBER_UNSUBSCRIBE_SECRET", "reliability-test-unsubscribe-secret")
            .env_remove("CRM_WEBHOOK_URL")
            .env_remove("FAILPOINTS")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("ember dev starts");
        let mut dev = Dev { child, port, data: data.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if client.get(format!("{}/healthz", dev.base())).send().await.is_ok() {
                return dev;
            }
            if let Ok(Some(status)) = dev.child.try_wait() {
                panic!("ember dev exited at start: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = dev.child.kill();
        panic!("ember dev did not answer within 30 s");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`, and waits for it to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `within` for the process to die by SIGKILL on its own (an armed failpoint);
    /// panics if it exits otherwise or lives on.
    pub async fn wait_killed(&mut self, within: Duration, point: &str) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert_eq!(status.signal(), Some(9), "{point}: ember dev ended by {status}, not by SIGKILL at the point");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{point}: the failpoint was never reached within {within:?}");
    }
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
