//! What a named failpoint does when the crash tests arm it (feature `failpoints`, variable
//! `FAILPOINTS`, action `return`): the process sends itself SIGKILL, so it dies exactly there
//! as under `kill -9` — no destructor runs, nothing is flushed, the store sees a crash.

/// Kills this process with SIGKILL, at once.
pub fn kill_self() -> ! {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    // `kill` missing or refused: die without unwinding all the same.
    std::process::abort()
}
