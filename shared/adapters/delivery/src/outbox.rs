//! The outbox mailer: each email becomes an RFC 5322 `.eml` file (open it with any mail
//! client), and a line in `index.jsonl`.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ember_scoring::SendOutcome;
use ember_service::ports::{Mailer, OutgoingEmail, PersonalCopies, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of `index.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Idempotency key of the send.
    pub send_id: String,
    /// Message-ID.
    pub message_id: String,
    /// Id of the recipient lead (`ld_…`); erasure removes the lead's entries by it.
    pub lead_id: String,
    /// Id of the campaign whose step sent it.
    pub campaign: String,
    /// Index of the `send` step in the campaign.
    pub step: usize,
    /// The model's template id.
    pub template: String,
    /// The recipient's address.
    pub to: String,
    /// The subject as rendered for this lead.
    pub subject: String,
    /// When the `.eml` file was written (also the start of its file name), RFC 3339.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The `.eml` file, relative to the outbox folder.
    pub file: String,
}

/// Writes emails into a folder (`<time>-<send id>.eml`) and appends one line per email to
/// `index.jsonl`. Idempotent per send id, also across restarts (the index is read back): sending
/// the same id again writes nothing and answers the same `Sent { message_id }`. One instance
/// may be shared between tasks (a mutex serialises writes); two processes must not share a folder.
#[derive(Debug)]
pub struct OutboxMailer {
    dir: PathBuf,
    state: Mutex<HashMap<String, String>>,
}

impl OutboxMailer {
    /// An outbox in `dir` (created if needed); existing entries are read back.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<OutboxMailer> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let m = OutboxMailer { dir, state: Mutex::new(HashMap::new()) };
        let known = m.read_index()?.into_iter().map(|e| (e.send_id, e.message_id)).collect();
        *m.state.lock().unwrap_or_else(|e| e.into_inner()) = known;
        Ok(m)
    }

    /// The folder holding the `.eml` files and `index.jsonl`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_index(&self) -> std::io::Result<Vec<IndexEntry>> {
        match std::fs::read_to_string(self.dir.join("index.jsonl")) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Everything sent, in order (read back from `index.jsonl`).
    pub fn sent(&self) -> std::io::Result<Vec<IndexEntry>> {
        let _g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.read_index()
    }

    fn write(&self, email: &OutgoingEmail) -> std::io::Result<String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = state.get(&email.send_id) {
            return Ok(id.clone());
        }
        let now = chrono::Utc::now();
        let domain = email.from.rsplit_once('@').map(|(_, d)| d.trim_end_matches('>')).unwrap_or("ember.local");
        let message_id = format!("{}@{}", uuid::Uuid::now_v7().simple(), domain);
        let file = format!("{}-{}.eml", now.format("%Y%m%dT%H%M%S%.3f"), safe(&email.send_id));
        std::fs::write(self.dir.join(&file), render_eml(email, &message_id, now))?;
        let entry = IndexEntry {
            send_id: email.send_id.clone(),
            message_id: message_id.clone(),
            lead_id: email.lead_id.clone(),
            campaign: email.campaign.clone(),
            step: email.step,
            template: email.template.clone(),
            to: email.to.clone(),
            subject: email.subject.clone(),
            at: now,
            file,
        };
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("index.jsonl"))?;
        writeln!(f, "{}", serde_json::to_string(&entry).map_err(std::io::Error::other)?)?;
        state.insert(email.send_id.clone(), message_id.clone());
        Ok(message_id)
    }
}

impl OutboxMailer {
    /// Removes the emails of these leads: their `.eml` files first, then their lines of
    /// `index.jsonl` (rewritten atomically), so an interrupted erasure is finished by the next
    /// one (the index still names the files left). The send ids stay known in memory, without
    /// any personal data, so a late retry of the same send writes nothing.
    fn erase(&self, lead_ids: &[String]) -> std::io::Result<usize> {
        let _state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for e in self.read_index()?.iter().filter(|e| lead_ids.contains(&e.lead_id)) {
            // Only a plain file name of this folder: the index is data, not a path to follow.
            if e.file.is_empty() || e.file.contains(['/', '\\']) || e.file.starts_with('.') {
                continue;
            }
            match std::fs::remove_file(self.dir.join(&e.file)) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        crate::files::erase_lines(&self.dir.join("index.jsonl"), lead_ids, |v| v.get("lead_id")?.as_str())
    }
}

#[async_trait]
impl PersonalCopies for OutboxMailer {
    async fn erase_leads(&self, lead_ids: &[String]) -> Result<usize, StoreError> {
        self.erase(lead_ids).map_err(|e| StoreError::Other(format!("erasing from the outbox: {e}")))
    }
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(120).collect()
}

/// A header value on one line: CR and LF (header injection) become spaces.
fn one_line(v: &str) -> String {
    v.replace(['\r', '\n'], " ")
}

/// RFC 2047 encoding of a header value when it is not plain ASCII: `=?UTF-8?B?…?=` words of at
/// most 39 bytes of text each (never splitting a character), folded onto continuation lines so
/// every line stays under 78 characters.
fn encode_header(v: &str) -> String {
    let v = one_line(v);
    if v.is_ascii() {
        return v;
    }
    let mut words = Vec::new();
    let mut start = 0;
    while start < v.len() {
        let mut end = (start + 39).min(v.len());
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!("=?UTF-8?B?{}?=", STANDARD.encode(&v[start..end])));
        start = end;
    }
    words.join("\r\n ")
}

/// `Name <addr>`: the display name encoded when not ASCII, quoted when it holds specials.
fn encode_address(v: &str) -> String {
    let v = one_line(v);
    let Some((name, addr)) = v.rsplit_once('<') else { return v };
    let name = name.trim();
    if name.is_empty() {
        return format!("<{addr}");
    }
    let bare = name.trim_matches('"');
    if !bare.is_ascii() {
        format!("{} <{addr}", encode_header(bare))
    } else if name.starts_with('"') || !bare.contains(|c: char| "()<>[]:;@\\,.\"".contains(c)) {
        format!("{name} <{addr}")
    } else {
        format!("\"{}\" <{addr}", bare.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn wrap76(b64: &str) -> String {
    b64.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("\r\n")
}

/// The message as RFC 5322 text: multipart/alternative, text then HTML, base64 bodies (UTF-8),
/// `Message-ID`, `Date`, the model's extra headers (`List-Unsubscribe`…), non-ASCII header text
/// encoded per RFC 2047.
pub fn render_eml(email: &OutgoingEmail, message_id: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let boundary = format!("ember-{}", uuid::Uuid::new_v4().simple());
    let mut h = vec![
        format!("From: {}", encode_address(&email.from)),
        format!("To: {}", encode_address(&email.to)),
        format!("Subject: {}", encode_header(&email.subject)),
        format!("Date: {}", at.to_rfc2822()),
        format!("Message-ID: <{message_id}>"),
        "MIME-Version: 1.0".to_string(),
    ];
    if let Some(r) = &email.reply_to {
        h.push(format!("Reply-To: {}", encode_address(r)));
    }
    for (k, v) in &email.headers {
        h.push(format!("{}: {}", one_line(k).replace(':', ""), encode_header(v)));
    }
    h.push(format!("X-Ember-Campaign: {}", encode_header(&email.campaign)));
    h.push(format!("X-Ember-Template: {}", encode_header(&email.template)));
    h.push(format!("Content-Type: multipart/alternative; boundary=\"{boundary}\""));
    let part = |ct: &str, body: &str| {
        format!(
            "--{boundary}\r\nContent-Type: {ct}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            wrap76(&STANDARD.encode(body))
        )
    };
    format!(
        "{}\r\n\r\n{}{}--{boundary}--\r\n",
        h.join("\r\n"),
        part("text/plain", &email.text),
        part("text/html", &email.html)
    )
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: &OutgoingEmail) -> SendOutcome {
        match self.write(email) {
            Ok(message_id) => SendOutcome::Sent { message_id },
            Err(e) => SendOutcome::Retry { reason: format!("outbox write failed: {e}") },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(send_id: &str) -> OutgoingEmail {
        OutgoingEmail {
            send_id: send_id.into(),
            lead_id: "ld_1".into(),
            campaign: "c".into(),
            step: 0,
            template: "hello".into(),
            from: "Café Ember <hi@ember.example>".into(),
            reply_to: None,
            to: "lea@example.fr".into(),
            subject: "Bonjour Léa".into(),
            html: "<p>Hello &lt;b&gt;</p>".into(),
            text: "Hello <b>".into(),
            headers: vec![
                ("List-Unsubscribe".into(), "<https://x/v1/unsubscribe?token=t>".into()),
                ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
            ],
            configuration_set: None,
        }
    }

    #[tokio::test]
    async fn writes_once_per_send_id_and_keeps_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let m = OutboxMailer::new(dir.path()).unwrap();
        let a = m.send(&email("s1")).await;
        let b = m.send(&email("s1")).await;
        assert_eq!(a, b, "the same send id is sent once");
        m.send(&email("s2")).await;
        let sent = m.sent().unwrap();
        assert_eq!(sent.len(), 2);
        let eml = std::fs::read_to_string(dir.path().join(&sent[0].file)).unwrap();
        assert!(eml.contains("Subject: =?UTF-8?B?"));
        assert!(eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(eml.contains("Content-Type: multipart/alternative"));
        let html_b64 = STANDARD.encode("<p>Hello &lt;b&gt;</p>");
        assert!(eml.contains(&html_b64), "the HTML part is kept as rendered (escaped)");
        assert!(eml.contains("Message-ID: <") && eml.contains("\r\nDate: ") && eml.contains("MIME-Version: 1.0"));
        assert!(eml.contains("List-Unsubscribe: <https://x/v1/unsubscribe?token=t>"));
        assert!(
            eml.contains(&format!("From: =?UTF-8?B?{}?= <hi@ember.example>", STANDARD.encode("Café Ember"))),
            "{eml}"
        );
        assert!(eml.contains(&STANDARD.encode("Hello <b>")), "the text part");
        assert_eq!(
            (sent[0].send_id.as_str(), sent[0].lead_id.as_str(), sent[0].subject.as_str()),
            ("s1", "ld_1", "Bonjour Léa")
        );
        let SendOutcome::Sent { message_id } = &a else { panic!("{a:?}") };
        assert_eq!(&sent[0].message_id, message_id);
        // Reopening reads the index back: still idempotent.
        let again = OutboxMailer::new(dir.path()).unwrap();
        assert_eq!(again.send(&email("s1")).await, a);
        assert_eq!(again.sent().unwrap().len(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "two .eml files and the index");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sends_of_one_id_write_once() {
        let dir = tempfile::tempdir().unwrap();
        let m = std::sync::Arc::new(OutboxMailer::new(dir.path()).unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move { m.send(&email("same")).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        assert!(outcomes.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(m.sent().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn erasing_a_lead_removes_its_files_and_index_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let m = OutboxMailer::new(dir.path()).unwrap();
        m.send(&email("s1")).await;
        let other = OutgoingEmail { lead_id: "ld_2".into(), to: "kept@example.org".into(), ..email("s2") };
        m.send(&other).await;
        std::fs::OpenOptions::new().append(true).open(dir.path().join("index.jsonl")).unwrap().write_all(b"not json\n").unwrap();
        assert_eq!(m.erase_leads(&["ld_1".into()]).await.unwrap(), 1);
        let left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(left.len(), 2, "the other lead's .eml and the index: {left:?}");
        let index = std::fs::read_to_string(dir.path().join("index.jsonl")).unwrap();
        assert!(!index.contains("lea@example.fr") && index.contains("kept@example.org"), "{index}");
        assert!(index.contains("not json"), "a line that does not parse is kept, not dropped");
        assert_eq!(m.erase_leads(&["ld_1".into()]).await.unwrap(), 0, "a second erasure finds nothing");
        assert_eq!(m.send(&email("s1")).await, m.send(&email("s1")).await, "a late retry of an erased send writes nothing");
        assert_eq!(m.sent().unwrap().len(), 1);
    }

    #[test]
    fn headers_are_encoded_folded_and_kept_on_one_line() {
        let long = "Réservez votre démo de la plateforme Ember — places limitées cette semaine";
        let h = encode_header(long);
        assert!(h.lines().all(|l| l.len() <= 76), "{h}");
        let decoded: String = h
            .split("\r\n ")
            .map(|w| {
                String::from_utf8(STANDARD.decode(w.trim_start_matches("=?UTF-8?B?").trim_end_matches("?=")).unwrap())
                    .unwrap()
            })
            .collect();
        assert_eq!(decoded, long);
        assert_eq!(encode_header("Hi\r\nBcc: x@y"), "Hi  Bcc: x@y");
        assert_eq!(encode_address("Shop, Inc <a@b.example>"), "\"Shop, Inc\" <a@b.example>");
        assert_eq!(encode_address("Shop <a@b.example>"), "Shop <a@b.example>");
        assert_eq!(encode_address("a@b.example"), "a@b.example");
    }
}
