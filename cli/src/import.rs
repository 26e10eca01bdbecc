//! `ember import events FILE.jsonl` and `ember import leads FILE.csv`: history from another
//! tool, through the same ingest service as live tracking ([`ember_service::Ember::ingest`] on
//! the local stack of [`crate::local`]).
//!
//! - **Resumable**: a checkpoint in `<data>/imports/` records how far the file was imported
//!   (saved every [`CHECKPOINT_EVERY`] rows). Re-running the command after an interruption
//!   continues there; rows imported after the last checkpoint are sent again and reported as
//!   duplicates, because every row has an event id (its own, or a deterministic one derived
//!   from its content, see [`ember_analytics::rows`]). A finished import is not repeated
//!   unless `--restart` is given (and then every row is a harmless duplicate).
//! - **Rejected rows** are listed with their line number and reason, on the terminal (the
//!   first ten) and in `FILE.rejected` next to the input.
//! - **Webhooks**: handoff messages produced by imported history (`lead.qualified` for a stage
//!   reached long ago) are recorded in `<data>/import-webhooks.jsonl`, not sent to the CRM,
//!   unless `--deliver-webhooks` is given. No email is sent by an import (only drip runs send);
//!   see docs/import.md for what the next drip run and SLA check do with imported leads.

use crate::local::{LocalOptions, LocalServices};
use anyhow::{Context, Result};
use ember_analytics::rows::{self, CsvLayout, Rejected};
use ember_delivery::FileWebhookRecorder;
use ember_scoring::RawEvent;
use ember_service::IngestStatus;
use ember_service::model_files;
use ember_service::ports::{Store, SystemClock, WebhookSender};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows between two checkpoint saves.
pub const CHECKPOINT_EVERY: u64 = 200;

/// The arguments of `ember import`: what to import (`events` or `leads`) and where.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Events, one JSON object per line (the shape of `POST /v1/events`).
    Events {
        /// The JSONL file.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Leads exported from another tool, as CSV with a header row. Known columns (email,
    /// first_name, last_name, company, job_title, country, company_size, industry, created_at,
    /// lifecycle stage… and the names common tools export) become traits; others are ignored
    /// unless mapped with `--map`.
    Leads {
        /// The CSV file.
        file: PathBuf,
        /// `COLUMN=TRAIT`: imports a column as that trait (`COLUMN=email`, `COLUMN=created_at`,
        /// `COLUMN=-` to ignore). Repeatable.
        #[arg(long = "map", value_name = "COLUMN=TRAIT")]
        maps: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
}

/// Where the import goes.
#[derive(Debug, clap::Args)]
struct Common {
    /// Model file the events are scored with (YAML).
    #[arg(long, env = "EMBER_MODEL", default_value = "examples/b2b-saas.yaml")]
    model: PathBuf,
    /// Data folder (as for `ember dev`): the embedded store, checkpoints, recorded webhooks.
    #[arg(long, env = "EMBER_DATA", default_value = ".ember")]
    data: PathBuf,
    /// Store to import into (embedded: `<data>/ember.db`; dynamodb: table `EMBER_TABLE`).
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    store: StoreKind,
    /// Imports the whole file again even if a checkpoint says it is done.
    #[arg(long)]
    restart: bool,
    /// Sends the webhooks imported history produces to the CRM instead of recording them.
    #[arg(long)]
    deliver_webhooks: bool,
}

/// The store an import writes to (`--store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    /// `<data>/ember.db`.
    Embedded,
    /// DynamoDB: table `EMBER_TABLE`, AWS settings from the standard environment.
    Dynamodb,
}

/// How far an import got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The input, as given.
    pub input: String,
    /// Last line (1-based) whose row was handled.
    pub line: u64,
    /// Rows accepted so far.
    pub accepted: u64,
    /// Rows already known (re-sent).
    pub duplicates: u64,
    /// Rows rejected so far.
    pub rejected: u64,
    /// The whole file was handled.
    pub complete: bool,
}

/// The checkpoint file of an input: `<data>/imports/<file name>.<hash of its absolute path>.json`.
pub fn checkpoint_path(data: &Path, input: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(input).unwrap_or_else(|_| input.to_path_buf());
    let name = input.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "input".into());
    let hash = rows::stable_id(&[&abs.to_string_lossy()]);
    data.join("imports").join(format!("{name}.{}.json", &hash[..12]))
}

fn load_checkpoint(path: &Path) -> Result<Option<Checkpoint>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(serde_json::from_str(&t).with_context(|| format!("reading checkpoint {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading checkpoint {}", path.display())),
    }
}

fn save_checkpoint(path: &Path, c: &Checkpoint) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(c)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The `.rejected` file next to an input.
pub fn rejected_path(input: &Path) -> PathBuf {
    let mut p = input.as_os_str().to_owned();
    p.push(".rejected");
    PathBuf::from(p)
}

/// One import run: the services, the checkpoint, the rejected-rows file, the progress bar.
struct Run {
    services: LocalServices,
    checkpoint: Checkpoint,
    checkpoint_path: PathBuf,
    rejected: std::fs::File,
    shown: Vec<Rejected>,
    bar: ProgressBar,
    since_save: u64,
}

impl Run {
    async fn row(&mut self, line: u64, row: Result<RawEvent, String>) -> Result<()> {
        let status = match row {
            Ok(raw) => self.services.ember.ingest.event(&raw).await,
            Err(reason) => IngestStatus::Rejected { event_id: None, reason },
        };
        match status {
            IngestStatus::Accepted { .. } => self.checkpoint.accepted += 1,
            IngestStatus::Duplicate { .. } => self.checkpoint.duplicates += 1,
            IngestStatus::Rejected { reason, .. } => {
                if reason.starts_with("not stored, retry later") {
                    // The store failed: stop here (checkpoint at the row before) so that a
                    // re-run retries this row.
                    self.save()?;
                    anyhow::bail!("line {line}: {reason} (run the command again to continue from here)");
                }
                self.checkpoint.rejected += 1;
                writeln!(self.rejected, "line {line}: {reason}")?;
                if self.shown.len() < 10 {
                    self.shown.push(Rejected { line, reason });
                }
            }
        }
        self.checkpoint.line = line;
        self.since_save += 1;
        if self.since_save >= CHECKPOINT_EVERY {
            self.save()?;
        }
        Ok(())
    }

    fn save(&mut self) -> Result<()> {
        self.rejected.flush()?;
        save_checkpoint(&self.checkpoint_path, &self.checkpoint)?;
        self.since_save = 0;
        Ok(())
    }

    fn finish(mut self, input: &Path) -> Result<bool> {
        self.checkpoint.complete = true;
        self.save()?;
        self.bar.finish_and_clear();
        let c = &self.checkpoint;
        println!("{}: {} accepted, {} already known, {} rejected", input.display(), c.accepted, c.duplicates, c.rejected);
        if c.rejected > 0 {
            for r in &self.shown {
                println!("  line {}: {}", r.line, r.reason);
            }
            if c.rejected > self.shown.len() as u64 {
                println!("  …");
            }
            println!("  every rejected row: {}", rejected_path(input).display());
        }
        Ok(true)
    }
}

async fn start(input: &Path, common: &Common) -> Result<Option<Run>> {
    let model = Arc::new(model_files::load_model(&common.model).map_err(|e| anyhow::anyhow!("{}: invalid model:\n{e}", common.model.display()))?);
    std::fs::create_dir_all(common.data.join("imports")).with_context(|| format!("creating {}", common.data.display()))?;
    let cp_path = checkpoint_path(&common.data, input);
    let previous = if common.restart { None } else { load_checkpoint(&cp_path)? };
    if let Some(c) = previous.as_ref().filter(|c| c.complete) {
        println!(
            "{} was imported already ({} accepted, {} already known, {} rejected); --restart imports it again",
            input.display(),
            c.accepted,
            c.duplicates,
            c.rejected
        );
        return Ok(None);
    }
    let resuming = previous.as_ref().is_some_and(|c| c.line > 0);
    let checkpoint = previous.unwrap_or_else(|| Checkpoint { input: input.display().to_string(), ..Default::default() });
    if resuming {
        println!("{}: resuming after line {}", input.display(), checkpoint.line);
    }
    let rejected = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resuming)
        .truncate(!resuming)
        .open(rejected_path(input))
        .with_context(|| format!("writing {}", rejected_path(input).display()))?;
    let store: Arc<dyn Store> = match common.store {
        StoreKind::Embedded => Arc::new(ember_store_sqlite::SqliteStore::open(&common.data.join("ember.db")).context("opening the embedded store")?),
        StoreKind::Dynamodb => Arc::new(ember_store_dynamodb::DynamoStore::from_env().await?),
    };
    let (webhooks, recorder): (Arc<dyn WebhookSender>, Arc<FileWebhookRecorder>) = if common.deliver_webhooks {
        crate::local::http_webhooks(&common.data)
    } else {
        let r = Arc::new(FileWebhookRecorder::new(common.data.join(crate::local::IMPORT_WEBHOOKS)));
        (r.clone(), r)
    };
    let services = LocalServices::open(
        model,
        store,
        &common.data,
        LocalOptions {
            public_url: std::env::var("EMBER_PUBLIC_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
            // Imports send no email: links are never rendered here.
            unsubscribe_secret: b"import: no email is rendered".to_vec(),
            clock: Arc::new(SystemClock),
            webhooks,
            mailer: None,
            copies: vec![recorder],
        },
    )?;
    let size = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{spinner} importing [{bar:30}] {bytes}/{total_bytes} {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Ok(Some(Run { services, checkpoint, checkpoint_path: cp_path, rejected, shown: Vec::new(), bar, since_save: 0 }))
}

/// Runs `ember import`.
pub async fn run(args: ImportArgs) -> Result<bool> {
    crate::init_logs_quiet();
    match args.what {
        What::Events { file, common } => import_events(&file, &common).await,
        What::Leads { file, maps, common } => import_leads(&file, &maps, &common).await,
    }
}

async fn import_events(input: &Path, common: &Common) -> Result<bool> {
    let Some(mut run) = start(input, common).await? else { return Ok(true) };
    let mut file = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    file.rewind()?;
    let reader = std::io::BufReader::new(file);
    let skip = run.checkpoint.line;
    let mut read = 0u64;
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", input.display()))?;
        read += line.len() as u64 + 1;
        let n = i as u64 + 1;
        if n <= skip || line.trim().is_empty() {
            continue;
        }
        run.row(n, rows::parse_event_line(&line)).await?;
        run.bar.set_position(read);
        run.bar.set_message(format!("{} rows", run.checkpoint.accepted + run.checkpoint.duplicates + run.checkpoint.rejected));
    }
    run.finish(input)
}

async fn import_leads(input: &Path, maps: &[String], common: &Common) -> Result<bool> {
    let maps = rows::parse_maps(maps).map_err(anyhow::Error::msg)?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(input)
        .with_context(|| format!("opening {}", input.display()))?;
    let headers: Vec<String> = rdr.headers().with_context(|| format!("reading the header of {}", input.display()))?.iter().map(String::from).collect();
    let layout = CsvLayout::new(&headers, &maps).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let Some(mut run) = start(input, common).await? else { return Ok(true) };
    let ignored = layout.ignored();
    if !ignored.is_empty() && run.checkpoint.line == 0 {
        println!("columns not imported (add --map COLUMN=TRAIT to keep one): {}", ignored.join(", "));
    }
    let skip = run.checkpoint.line;
    for rec in rdr.records() {
        let (line, byte, row) = match rec {
            Ok(r) => {
                let (line, byte) = r.position().map_or((0, 0), |p| (p.line(), p.byte()));
                let fields: Vec<&str> = r.iter().collect();
                (line, byte, layout.row(&fields))
            }
            Err(e) => {
                let (line, byte) = e.position().map_or((0, 0), |p| (p.line(), p.byte()));
                (line, byte, Err(format!("not CSV: {e}")))
            }
        };
        if line <= skip {
            continue;
        }
        run.row(line, row).await?;
        run.bar.set_position(byte);
        run.bar.set_message(format!("{} rows", run.checkpoint.accepted + run.checkpoint.duplicates + run.checkpoint.rejected));
    }
    run.finish(input)
}
