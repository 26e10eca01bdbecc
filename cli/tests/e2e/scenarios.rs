//! Every scenario file — the repository's and, when present, `../shared/scenarios` — on the
//! embedded store, through the same runner as `ember scenario run`.

use ember::scenario_cmd::{run_file, StoreKind};
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

async fn run_dir(dir: &Path) -> usize {
    let list = files(dir);
    let mut failures = Vec::new();
    for f in &list {
        match run_file(f, StoreKind::Embedded).await {
            Ok(r) if r.passed() => {}
            Ok(r) => failures.push(format!(
                "{}:\n{}",
                f.display(),
                r.failures.iter().map(|x| format!("  steps[{}]: {}", x.step, x.message)).collect::<Vec<_>>().join("\n")
            )),
            Err(e) => failures.push(format!("{}: {e:#}", f.display())),
        }
    }
    assert!(failures.is_empty(), "scenario failures:\n{}", failures.join("\n"));
    list.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_scenarios_pass_on_the_embedded_store() {
    let dir = ember_testing::root().join("tests/scenarios");
    let n = run_dir(&dir).await;
    assert!(n >= 7, "expected the shared acceptance scenarios in {}, found {n}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_scenarios_pass_on_the_embedded_store() {
    let dir = ember_testing::root().join("../shared/scenarios");
    if !dir.exists() {
        // Outside the product workspace there is no shared folder; the repository copies ran above.
        eprintln!("{} not present: nothing more to run", dir.display());
        return;
    }
    run_dir(&dir).await;
}
