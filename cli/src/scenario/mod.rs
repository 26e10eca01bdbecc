//! `ember scenario run`: executable acceptance scenarios (SPEC §5).

mod format;
mod run;

pub use format::{Action, Expect, Scenario, Step};
pub use run::{run, Failure, Harness, Report};
