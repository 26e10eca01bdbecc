//! File helpers shared by the local adapters.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `text` to a temporary file beside `path`, syncs it and renames it over `path`: a crash
/// leaves the old or the new content, never half of one.
pub(crate) fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.to_path_buf().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Rewrites the JSON-lines file at `path` without the lines `about` says concern one of
/// `lead_ids` (lines it cannot read are kept as they are); how many lines went. A missing file
/// has nothing to erase; nothing is rewritten when nothing matches.
pub(crate) fn erase_lines(
    path: &Path,
    lead_ids: &[String],
    about: impl Fn(&serde_json::Value) -> Option<&str>,
) -> std::io::Result<usize> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut kept = String::with_capacity(text.len());
    let mut removed = 0;
    for line in text.lines() {
        let theirs = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .is_some_and(|v| about(&v).is_some_and(|id| lead_ids.iter().any(|l| l == id)));
        if theirs {
            removed += 1;
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if removed > 0 {
        replace(path, &kept)?;
    }
    Ok(removed)
}
