//! The scenario file format (SPEC §5).

use anyhow::{anyhow, bail, Context, Result};
use ember_scoring::{Span, Time};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file's `scenario:` text, or its path when absent; printed with the result.
    pub title: String,
    /// File it came from.
    pub file: PathBuf,
    /// Model path (resolved against the scenario's folder).
    pub model: PathBuf,
    /// The file's `start:` (RFC 3339): the clock's time before the first step; `at:` offsets count from it.
    pub start: Time,
    /// Steps, in order.
    pub steps: Vec<Step>,
}

/// One step: an optional clock move, then at most one action.
#[derive(Debug, Clone)]
pub struct Step {
    /// Index in the file (for messages).
    pub index: usize,
    /// Move the clock to start + offset.
    pub at: Option<Span>,
    /// The step's one action key (`event`, `tick`, `crm`, `expect`…), parsed.
    pub action: Action,
}

/// What a step does once the clock is moved.
#[derive(Debug, Clone)]
pub enum Action {
    /// Only move the clock.
    None,
    /// Ingest one event (JSON, as a client would send it) and expect that ingest outcome.
    Event(Value, Outcome),
    /// Run the scheduled jobs.
    Tick,
    /// A tick at each `every` after now, up to start + `until`.
    Ticks {
        /// Time between two ticks, e.g. `1h`.
        every: Span,
        /// Offset from the scenario's `start` past which no tick runs.
        until: Span,
    },
    /// CRM feedback (JSON body of `POST /v1/crm/feedback`).
    Crm(Value),
    /// Expectations about one lead.
    Expect(Expect),
}

/// The ingest outcome an `event:` step expects (`outcome:`, accepted by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Applied to a lead.
    #[default]
    Accepted,
    /// Its event id was seen before: nothing changed.
    Duplicate,
    /// Refused, with a reason.
    Rejected,
}

impl Outcome {
    /// Name as written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
        }
    }

    fn parse(v: &Value) -> Result<Outcome> {
        match v.as_str() {
            Some("accepted") => Ok(Outcome::Accepted),
            Some("duplicate") => Ok(Outcome::Duplicate),
            Some("rejected") => Ok(Outcome::Rejected),
            _ => bail!("`outcome`: `{}` is not an outcome (accepted, duplicate, rejected)", text(v).unwrap_or_else(|| v.to_string())),
        }
    }
}

/// `expect:` — every field optional.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Email or anonymous id.
    pub lead: String,
    /// Exact scores for the groups named.
    pub scores: BTreeMap<String, i64>,
    /// Stage id the lead must be in; `None` does not check it.
    pub stage: Option<String>,
    /// Tags that must be present.
    pub tags: Vec<String>,
    /// Temperature label the lead must have (`none` when it has none).
    pub temperature: Option<String>,
    /// Quadrant label the lead must have (`none` when it has none).
    pub quadrant: Option<String>,
    /// Campaign id → status of the lead's latest enrollment in it (`active`, `converted`…, or `none`).
    pub campaigns: BTreeMap<String, String>,
    /// Templates sent since the last expect that listed emails for this lead.
    pub emails: Option<Vec<String>>,
    /// Webhook types since the last expect that listed them for this lead.
    pub webhooks: Option<Vec<String>>,
}

fn span(v: &Value, what: &str) -> Result<Span> {
    match v {
        Value::String(s) => Span::parse(s).map_err(|e| anyhow!("{what}: {e}")),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(Span::from_secs(0)),
        _ => bail!("{what}: expected a duration such as 1d2h"),
    }
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(|| anyhow!("{what}: expected a list of strings")))
            .collect(),
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        _ => bail!("{what}: expected a list of strings"),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let src = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let yaml: serde_norway::Value = serde_norway::from_str(&src).with_context(|| format!("{}: not valid YAML", path.display()))?;
        let doc: Value = serde_json::to_value(yaml).with_context(|| format!("{}: unsupported YAML", path.display()))?;
        Self::from_value(&doc, path).with_context(|| format!("{}", path.display()))
    }

    fn from_value(doc: &Value, path: &Path) -> Result<Scenario> {
        let obj = doc.as_object().ok_or_else(|| anyhow!("a scenario is a map"))?;
        for k in obj.keys() {
            if !["scenario", "model", "start", "steps"].contains(&k.as_str()) {
                bail!("unknown key `{k}` (expected scenario, model, start, steps)");
            }
        }
        let title = obj.get("scenario").and_then(text).unwrap_or_else(|| path.display().to_string());
        let model_rel = obj.get("model").and_then(Value::as_str).ok_or_else(|| anyhow!("`model` is missing"))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let model = base.join(model_rel);
        let start_text = obj.get("start").and_then(Value::as_str).ok_or_else(|| anyhow!("`start` is missing (an RFC 3339 time)"))?;
        let start: Time = chrono::DateTime::parse_from_rfc3339(start_text)
            .map_err(|e| anyhow!("`start` {start_text}: {e}"))?
            .with_timezone(&chrono::Utc);
        let raw_steps = obj.get("steps").and_then(Value::as_array).ok_or_else(|| anyhow!("`steps` is missing (a list)"))?;
        let mut steps = Vec::new();
        for (i, s) in raw_steps.iter().enumerate() {
            steps.push(Step::from_value(i, s).with_context(|| format!("steps[{i}]"))?);
        }
        Ok(Scenario { title, file: path.to_path_buf(), model, start, steps })
    }
}

impl Step {
    fn from_value(index: usize, v: &Value) -> Result<Step> {
        let obj = v.as_object().ok_or_else(|| anyhow!("a step is a map"))?;
        let at = obj.get("at").map(|a| span(a, "`at`")).transpose()?;
        let outcome = obj.get("outcome").map(Outcome::parse).transpose()?;
        if outcome.is_some() && !obj.contains_key("event") {
            bail!("`outcome` belongs to an `event` step");
        }
        let mut actions = Vec::new();
        for (k, val) in obj {
            let a = match k.as_str() {
                "at" | "outcome" => continue,
                "event" => {
                    if !val.is_object() {
                        bail!("`event` must be a map");
                    }
                    Action::Event(val.clone(), outcome.unwrap_or_default())
                }
                "tick" => match val {
                    Value::Bool(true) => Action::Tick,
                    Value::Bool(false) => Action::None,
                    _ => bail!("`tick` must be true"),
                },
                "ticks" => {
                    let every = span(val.get("every").ok_or_else(|| anyhow!("`ticks.every` is missing"))?, "`ticks.every`")?;
                    let until = span(val.get("until").ok_or_else(|| anyhow!("`ticks.until` is missing"))?, "`ticks.until`")?;
                    if every.secs() <= 0 {
                        bail!("`ticks.every` must be longer than 0s");
                    }
                    Action::Ticks { every, until }
                }
                "crm" => Action::Crm(val.clone()),
                "expect" => Action::Expect(Expect::from_value(val)?),
                other => bail!("unknown key `{other}` (expected at, event, outcome, tick, ticks, crm, expect)"),
            };
            actions.push(a);
        }
        if actions.len() > 1 {
            bail!("one action per step (event, tick, ticks, crm or expect)");
        }
        Ok(Step { index, at, action: actions.pop().unwrap_or(Action::None) })
    }
}

impl Expect {
    fn from_value(v: &Value) -> Result<Expect> {
        let obj = v.as_object().ok_or_else(|| anyhow!("`expect` must be a map"))?;
        let mut e = Expect { lead: obj.get("lead").and_then(text).ok_or_else(|| anyhow!("`expect.lead` is missing"))?, ..Expect::default() };
        for (k, val) in obj {
            match k.as_str() {
                "lead" => {}
                "scores" => {
                    for (g, n) in val.as_object().ok_or_else(|| anyhow!("`expect.scores` must be a map"))? {
                        let n = n.as_i64().ok_or_else(|| anyhow!("`expect.scores.{g}` must be an integer"))?;
                        e.scores.insert(g.clone(), n);
                    }
                }
                "stage" => e.stage = text(val),
                "tags" => e.tags = strings(val, "`expect.tags`")?,
                "temperature" => e.temperature = text(val),
                "quadrant" => e.quadrant = text(val),
                "campaigns" => {
                    for (c, s) in val.as_object().ok_or_else(|| anyhow!("`expect.campaigns` must be a map"))? {
                        let s = text(s).ok_or_else(|| anyhow!("`expect.campaigns.{c}` must be a status"))?;
                        if !["active", "completed", "converted", "exited", "none"].contains(&s.as_str()) {
                            bail!("`expect.campaigns.{c}`: `{s}` is not a status (active, completed, converted, exited, none)");
                        }
                        e.campaigns.insert(c.clone(), s);
                    }
                }
                "emails" => e.emails = Some(strings(val, "`expect.emails`")?),
                "webhooks" => e.webhooks = Some(strings(val, "`expect.webhooks`")?),
                other => bail!(
                    "unknown key `expect.{other}` (expected lead, scores, stage, tags, temperature, quadrant, campaigns, emails, webhooks)"
                ),
            }
        }
        Ok(e)
    }
}
