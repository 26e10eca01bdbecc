//! `ember simulate`: a synthetic population with a known ground truth
//! ([`ember_analytics::simulate`]), written as `events.jsonl`, `outcomes.csv` and `truth.json`.

use anyhow::{Context, Result};
use ember_analytics::simulate::{generate, Spec};
use std::io::Write;
use std::path::PathBuf;

/// The flags of `ember simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Leads in the population (each with its own events; some of them buy).
    #[arg(long, default_value_t = 10_000)]
    pub leads: u64,
    /// Seed: the same seed gives the same population.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Folder to write events.jsonl, outcomes.csv and truth.json into.
    #[arg(long)]
    pub out: PathBuf,
}

/// Generates and writes the population.
pub fn run(args: SimulateArgs) -> Result<()> {
    let pop = generate(&Spec::new(args.leads, args.seed));
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, f: &dyn Fn(&mut dyn Write) -> Result<()>| -> Result<PathBuf> {
        let path = args.out.join(name);
        let file = std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        let mut w = std::io::BufWriter::new(file);
        f(&mut w)?;
        w.flush()?;
        Ok(path)
    };
    let events = write("events.jsonl", &|w| {
        for e in &pop.events {
            serde_json::to_writer(&mut *w, e)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    let outcomes = write("outcomes.csv", &|w| {
        writeln!(w, "email,purchased_at,amount")?;
        for o in &pop.outcomes {
            let at = o.purchased_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            writeln!(w, "{},{at},{}", o.lead, o.amount.unwrap_or(0.0))?;
        }
        Ok(())
    })?;
    let truth = write("truth.json", &|w| {
        serde_json::to_writer_pretty(&mut *w, &pop.truth)?;
        Ok(())
    })?;
    println!(
        "{} leads, {} events, {} buyers (true buy rate {:.1} %)\n  {}\n  {}\n  {}",
        args.leads,
        pop.events.len(),
        pop.outcomes.len(),
        pop.truth.buy_rate * 100.0,
        events.display(),
        outcomes.display(),
        truth.display()
    );
    Ok(())
}
