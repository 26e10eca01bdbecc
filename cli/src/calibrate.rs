//! `ember calibrate` and `ember backtest`: history and outcomes in, lifts, suggested points,
//! calibrated models and MQL precision / recall out. The statistics are
//! [`ember_analytics::calibrate`]; the replay is [`ember_analytics::backtest`] over the real
//! scoring engine.

use anyhow::{Context, Result};
use ember_analytics::backtest::{self, Figures};
use ember_analytics::calibrate::{self, histories, History, Options, Table};
use ember_analytics::rows::{self, Outcomes, Rejected};
use ember_scoring::{Engine, Model};
use ember_service::model_files;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of `ember calibrate`.
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// History: events, one JSON object per line (SPEC §3 shape; `occurred_at` required).
    #[arg(long)]
    pub events: PathBuf,
    /// Outcomes: CSV (`email,purchased_at[,amount]`) or JSONL with the same keys.
    #[arg(long)]
    pub outcomes: PathBuf,
    /// A model whose behaviour rules are calibrated too (and whose range scales the points).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Writes a copy of `--base` with the suggested points.
    #[arg(long, requires = "base")]
    pub write_model: Option<PathBuf>,
    /// Keeps the range-based scale instead of matching the base model's MQL volume.
    #[arg(long)]
    pub keep_scale: bool,
    /// Stage whose volume the calibrated model matches.
    #[arg(long, default_value = "mql")]
    pub mql_stage: String,
    /// Fewest leads an activity needs before points are suggested.
    #[arg(long, default_value_t = 30)]
    pub min_support: u64,
    /// Largest |points| without a base model.
    #[arg(long, default_value_t = 25)]
    pub max_points: i64,
    /// Prints JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Options of `ember backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// The model to test.
    #[arg(long)]
    pub model: PathBuf,
    /// History: events, one JSON object per line.
    #[arg(long)]
    pub events: PathBuf,
    /// Outcomes: CSV or JSONL.
    #[arg(long)]
    pub outcomes: PathBuf,
    /// The stage that defines an MQL (reaching it or any later stage counts).
    #[arg(long, default_value = "mql")]
    pub mql_stage: String,
    /// Prints JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb
}

/// A history file read and validated: the events grouped per lead, and the rejected lines.
pub struct LoadedHistory {
    /// One history per lead (email, or anonymous id), each oldest event first.
    pub histories: Vec<History>,
    /// Lines that validated as events, over all histories.
    pub events: u64,
    /// Lines that could not be used.
    pub rejected: Vec<Rejected>,
}

/// Reads a JSONL history with a progress bar (by bytes read).
pub fn load_history(path: &Path) -> Result<LoadedHistory> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = bar(size, "reading history");
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    let reader = std::io::BufReader::new(pb.wrap_read(file));
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match rows::parse_event_line(&line).and_then(|raw| rows::validate_history(&raw, now)) {
            Ok(e) => events.push(e),
            Err(reason) => rejected.push(Rejected { line: i as u64 + 1, reason }),
        }
    }
    pb.finish_and_clear();
    let n = events.len() as u64;
    Ok(LoadedHistory { histories: histories(events), events: n, rejected })
}

/// Reads an outcomes file.
pub fn load_outcomes(path: &Path) -> Result<(Outcomes, Vec<Rejected>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    rows::parse_outcomes(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn report_rejected(what: &Path, rejected: &[Rejected]) {
    if rejected.is_empty() {
        return;
    }
    eprintln!("{}: {} line(s) skipped", what.display(), rejected.len());
    for r in rejected.iter().take(10) {
        eprintln!("  line {}: {}", r.line, r.reason);
    }
    if rejected.len() > 10 {
        eprintln!("  …");
    }
}

fn load_model(path: &Path) -> Result<Arc<Model>> {
    model_files::load_model(path).map(Arc::new).map_err(|e| anyhow::anyhow!("{}: invalid model:\n{e}", path.display()))
}

/// Replays the history through `engine` with a progress bar.
pub fn replay(engine: &Engine, h: &LoadedHistory, outcomes: &Outcomes) -> Vec<backtest::Replayed> {
    let pb = bar(h.events, "replaying");
    let out = backtest::replay(engine, &h.histories, outcomes, &mut |n| pb.set_position(n));
    pb.finish_and_clear();
    out
}

fn print_table(title: &str, t: &Table, rules: bool) {
    println!("{title} — {} leads, {} bought (base rate {:.2} %)", t.leads, t.converted, t.base_rate * 100.0);
    let extra = if rules { format!(" {:>8} {:>8}", "now", "group") } else { String::new() };
    println!("  {:<44} {:>7} {:>9} {:>8} {:>6} {:>7}{extra}", "activity", "leads", "bought", "rate", "lift", "points");
    for r in &t.rows {
        let points = r.points.map_or("-".to_string(), |p| p.to_string());
        let extra = if rules {
            format!(" {:>8} {:>8}", r.current.map_or("-".into(), |c| c.to_string()), r.group.as_deref().unwrap_or("-"))
        } else {
            String::new()
        };
        println!("  {:<44} {:>7} {:>9} {:>7.2}% {:>6.2} {:>7}{extra}", r.name, r.leads, r.converted, r.rate * 100.0, r.lift, points);
    }
}

/// `ember calibrate`.
pub fn run_calibrate(args: CalibrateArgs) -> Result<bool> {
    let history = load_history(&args.events)?;
    report_rejected(&args.events, &history.rejected);
    let (outcomes, bad) = load_outcomes(&args.outcomes)?;
    report_rejected(&args.outcomes, &bad);
    anyhow::ensure!(!history.histories.is_empty(), "{}: no usable events", args.events.display());
    let opts = Options { min_support: args.min_support, prior_leads: Options::default().prior_leads, max_points: args.max_points };
    let base = args.base.as_deref().map(load_model).transpose()?;
    let range = base.as_ref().and_then(|m| {
        m.rules.iter().filter(|r| matches!(r.kind, ember_scoring::model::RuleKind::Behaviour(_))).flat_map(|r| r.points.iter().map(|(_, n)| n.abs())).max()
    });
    let activities = calibrate::activities(&history.histories, &outcomes, range, &opts);
    let mut json = serde_json::json!({"activities": activities});
    if !args.json {
        print_table("activities", &activities, false);
        println!("  points = round(K × ln(smoothed lift)); K gives the largest |ln lift| {} points (docs/calibration.md)", range.unwrap_or(opts.max_points));
    }
    if let (Some(base), Some(base_path)) = (&base, &args.base) {
        let engine = Engine::new(base.clone());
        let replayed = replay(&engine, &history, &outcomes);
        let mut rules = calibrate::rules(base, &replayed, &opts);
        if let Some(out) = &args.write_model {
            let yaml = std::fs::read_to_string(base_path).with_context(|| format!("reading {}", base_path.display()))?;
            let dir = base_path.parent().map(Path::to_path_buf).unwrap_or_default();
            let name = out.display().to_string();
            let load = |y: &str| model_files::model_from_text(y, &name, Some(&dir)).map_err(|e| e.to_string());
            if !args.keep_scale {
                let pb = ProgressBar::new_spinner();
                pb.set_message("matching the base model's MQL volume");
                let (scaled, s) = calibrate::match_volume(&yaml, base, &rules, &history.histories, &outcomes, &args.mql_stage, &load, &mut |_| pb.tick())?;
                pb.finish_and_clear();
                if !args.json {
                    println!(
                        "scale: ×{:.2} so that the calibrated model qualifies {} of {} leads like the base model's {} (K per group, docs/calibration.md)",
                        s.factor, s.calibrated_mqls, s.sample, s.base_mqls
                    );
                }
                json["scaling"] = serde_json::to_value(&s)?;
                rules = scaled;
            }
            let header = format!(
                "Calibrated by `ember calibrate` from {} with {} and {}.\nOnly behaviour rule points (and their caps) differ from the base model.",
                base_path.display(),
                args.events.display(),
                args.outcomes.display()
            );
            let (text, changed) = calibrate::write_model(&yaml, base, &rules, &header)?;
            load(&text).map_err(|e| anyhow::anyhow!("the calibrated model does not load:\n{e}"))?;
            std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
            if !args.json {
                println!("wrote {} ({changed} rules changed)", out.display());
            }
            json["written"] = serde_json::json!({"path": out, "rules_changed": changed});
        }
        if !args.json {
            print_table(&format!("rules of {}", base_path.display()), &rules, true);
        }
        json["rules"] = serde_json::to_value(&rules)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(true)
}

/// Prints backtest figures as text: counts, precision, recall, lead time.
pub fn print_figures(f: &Figures) {
    println!("model {} — MQL = stage `{}` or later", f.model, f.mql_stage);
    println!("  leads {}, bought {}, MQLs {} ({:.1} % of leads), MQLs that bought {}", f.leads, f.buyers, f.mqls, f.mql_rate * 100.0, f.true_positives);
    println!("  precision {:.1} %   recall {:.1} %", f.precision * 100.0, f.recall * 100.0);
    match f.median_lead_time_days {
        Some(d) => println!("  median lead time MQL → purchase: {d:.1} days"),
        None => println!("  median lead time MQL → purchase: - (no MQL bought)"),
    }
}

/// `ember backtest`.
pub fn run_backtest(args: BacktestArgs) -> Result<bool> {
    let model = load_model(&args.model)?;
    let history = load_history(&args.events)?;
    report_rejected(&args.events, &history.rejected);
    let (outcomes, bad) = load_outcomes(&args.outcomes)?;
    report_rejected(&args.outcomes, &bad);
    let engine = Engine::new(model);
    let replayed = replay(&engine, &history, &outcomes);
    let f = backtest::figures(&engine, &replayed, &args.mql_stage).map_err(anyhow::Error::msg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&f)?);
    } else {
        print_figures(&f);
    }
    Ok(true)
}
