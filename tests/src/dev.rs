//! `ember dev` as a child process: started on a loopback port over a data folder with the keys a
//! test chooses, waited for until `/healthz` answers, killed (SIGKILL) when dropped or on
//! demand, restarted on the same folder and port.

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The keys and secrets a test server is configured with; keys are given to it as hashes,
/// like in production. `None` leaves the variable unset.
pub struct Keys {
    /// The public write key (`EMBER_WRITE_KEYS`).
    pub write: &'static str,
    /// The site the write key is bound to (`<hash>@<origin>`), if any.
    pub origin: Option<&'static str>,
    /// The admin key (`EMBER_ADMIN_KEYS`).
    pub admin: &'static str,
    /// The secret CRM feedback is signed with (`EMBER_CRM_SECRET`).
    pub crm: Option<&'static str>,
    /// The secret of unsubscribe links (`EMBER_UNSUBSCRIBE_SECRET`).
    pub unsubscribe: Option<&'static str>,
}

/// The crash and soak tests' server: these keys, jobs every second, errors only in its log,
/// on a port of the harness range (18800–18899).
pub const RELIABILITY: Keys = Keys {
    write: "ek_w_reliability-test-write-key",
    origin: None,
    admin: "ek_a_reliability-test-admin-key",
    crm: None,
    unsubscribe: Some("reliability-test-unsubscribe-secret"),
};

/// A loopback port nobody listens on now (the system's choice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `ember dev --listen 127.0.0.1:<port> --data <data>` run from the repository's root, its
/// output discarded, `RUST_LOG=warn`, no CRM webhook URL and no keys unless [`DevCommand::keys`]
/// sets them; [`DevCommand::command`] adds the rest.
pub struct DevCommand {
    cmd: Command,
    port: u16,
    data: PathBuf,
}

/// Prepares `bin dev` (`bin`: the caller's `env!("CARGO_BIN_EXE_ember")`) on `data` and `port`.
pub fn dev(bin: &str, data: &Path, port: u16) -> DevCommand {
    let mut cmd = crate::command(bin);
    cmd.args(["dev", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .env_remove("EMBER_WRITE_KEYS")
        .env_remove("EMBER_ADMIN_KEYS")
        .env_remove("EMBER_CRM_SECRET")
        .env_remove("CRM_WEBHOOK_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    DevCommand { cmd, port, data: data.to_path_buf() }
}

impl DevCommand {
    /// Configures the server with `keys`.
    pub fn keys(mut self, keys: &Keys) -> Self {
        let write = ember_http::auth::hash_entry(keys.write);
        let write = match keys.origin {
            Some(site) => format!("{write}@{site}"),
            None => write,
        };
        self.cmd.env("EMBER_WRITE_KEYS", write).env("EMBER_ADMIN_KEYS", ember_http::auth::hash_entry(keys.admin));
        if let Some(crm) = keys.crm {
            self.cmd.env("EMBER_CRM_SECRET", crm);
        }
        if let Some(secret) = keys.unsubscribe {
            self.cmd.env("EMBER_UNSUBSCRIBE_SECRET", secret);
        }
        self
    }

    /// The command, for more arguments, environment or other output.
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// The command itself, for a test that runs it its own way (e.g. until it exits).
    pub fn into_command(self) -> Command {
        self.cmd
    }

    /// Spawns the server without waiting for it.
    pub fn spawn(mut self) -> Dev {
        let child = self.cmd.spawn().expect("ember dev starts");
        Dev { child, port: self.port, data: self.data }
    }

    /// Spawns the server and waits until it answers (30 s at most); panics if it exits first.
    pub async fn start(self) -> Dev {
        let mut dev = self.spawn();
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
}

/// Starts the crash and soak tests' server ([`RELIABILITY`]) on `data` (port: `port`, else a free
/// one of the harness range) with the example model, jobs every second, and `env` added (e.g.
/// `FAILPOINTS`); waits until it answers.
pub async fn reliability(bin: &str, data: &Path, port: Option<u16>, env: &[(&str, &str)]) -> Dev {
    let port = port.unwrap_or_else(|| ember_faults::ports::free().expect("a free port in 18800-18899"));
    let mut dev = dev(bin, data, port).keys(&RELIABILITY);
    dev.command().args(["--tick-every", "1s"]).env("RUST_LOG", "error").env_remove("FAILPOINTS").envs(env.iter().copied());
    dev.start().await
}

/// A running `ember dev`, killed when dropped.
pub struct Dev {
    /// The process.
    pub child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    /// Its data folder.
    pub data: PathBuf,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
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

/// `POST /v1/events` of `body` with `key`: status and JSON body (`null` if there is none).
pub async fn post_events(base: &str, key: &str, body: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `GET url` with `key`: status and JSON body (`null` if there is none).
pub async fn get_json(url: &str, key: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().get(url).bearer_auth(key).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
