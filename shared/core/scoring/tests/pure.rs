//! The crate promises to be pure: no file, no environment, no clock, no process. This test reads
//! the crate's source files (the test does I/O, the crate does not) and fails if any of them
//! names a way out, unit tests under `src/` included. Reading files or settings belongs to the
//! caller, through `ModelSources` (`ember_service::model_files` in the application layer).

use std::path::{Path, PathBuf};

/// What a pure function never calls.
const FORBIDDEN: [&str; 6] = ["std::fs", "std::env", "std::time::SystemTime", "Utc::now", "File::open", "std::process"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_reaches_for_io_the_environment_or_the_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "the sources were not found under {}", src.display());
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in FORBIDDEN.iter().filter(|w| line.contains(*w)) {
                found.push(format!("{}:{}: {word}", file.strip_prefix(&src).unwrap().display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "ember-scoring must stay pure; found:\n{}", found.join("\n"));
}
