//! Conformance suite for [`ember_service::ports::Store`]: written once against `Arc<dyn Store>`,
//! run by every implementation (the embedded SQLite store, the DynamoDB store) so they behave
//! the same.
//!
//! Each check is a `pub async fn(Arc<dyn Store>)` that expects a *fresh, empty* store and panics
//! on failure. Three ways to run them:
//!
//! - [`conformance_tests!`]: one `#[tokio::test]` per check (the crate using it needs `tokio`
//!   with `macros` and `rt-multi-thread`):
//!
//!   ```text
//!   async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) { /* a new, empty store */ }
//!   ember_store_tests::conformance_tests!(fresh);
//!   ```
//!
//!   The second element of the pair is kept alive until the check ends (a temp dir, a table to
//!   drop…); use `()` when there is nothing to keep.
//! - [`run_all`]: every check in sequence, each on a store from `make` (e.g. from a CLI command
//!   checking a real DynamoDB endpoint).
//! - [`CHECKS`]: the list itself, to pick from.
//!
//! Checks use whole-second times (stores index due times in milliseconds) and build leads from
//! JSON, so they need no scoring model.

use ember_service::ports::Store;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod commits;
mod concurrency;
mod due;
mod erasure;
mod events;
mod fixtures;
mod release;
mod tallies;

pub use commits::{claims, commit_is_atomic, create_then_conflicting_create, duplicate_event_ids, empty_store, merge_retires_and_repoints, stale_update_conflicts};
pub use concurrency::{concurrent_claims, concurrent_increments, concurrent_lead_only_increments};
pub use due::{due_before_1970, due_queries, due_reads_only_what_is_due};
pub use erasure::{erase, erase_covers_merged_profiles, erase_races_ingest};
pub use events::{events_oldest_first, scan_pagination};
pub use fixtures::*;
pub(crate) use fixtures::{expect_conflict, expect_duplicate, ids};
pub use release::{release_moves_an_identity_atomically, release_must_match_a_claim, release_of_a_stale_owner_conflicts};
pub use tallies::{concurrent_tallies, reports_match_the_leads, tallies_add_up};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One conformance check: its name (as [`conformance_tests!`] names the test) and its body.
#[derive(Clone, Copy)]
pub struct Check {
    /// The check's function name.
    pub name: &'static str,
    /// Runs it on a fresh, empty store (panics on failure).
    pub run: fn(Arc<dyn Store>) -> BoxFuture<'static, ()>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

fn boxed<F: Future<Output = ()> + Send + 'static>(f: F) -> BoxFuture<'static, ()> {
    Box::pin(f)
}

/// Defines [`CHECKS`] and [`conformance_tests!`] from one list, so they can't drift apart.
/// (`$d` is a literal `$`, for the inner macro's own variables.)
macro_rules! define_checks {
    ($d:tt $($name:ident),* $(,)?) => {
        /// Every check, in the order [`run_all`] runs them.
        pub const CHECKS: &[Check] = &[$(Check { name: stringify!($name), run: |s| boxed($name(s)) }),*];

        /// Generates one `#[tokio::test]` per conformance check. `$fresh` is an async fn (or a
        /// closure returning a future) giving `(Arc<dyn Store>, guard)` for a new, empty store;
        /// the guard lives until the check ends. Needs `tokio` (`macros`, `rt-multi-thread`).
        /// Attributes after the factory go on every test, e.g.
        /// `conformance_tests!(fresh, #[ignore = "needs a server"]);`.
        #[macro_export]
        macro_rules! conformance_tests {
            ($d fresh:expr $d(, $d(#[$d attr:meta])*)?) => {
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    $d($d(#[$d attr])*)?
                    async fn $name() {
                        let (store, _guard) = ($d fresh)().await;
                        $d crate::$name(store).await;
                    }
                )*
            };
        }
    };
}

define_checks!($
    empty_store,
    create_then_conflicting_create,
    stale_update_conflicts,
    commit_is_atomic,
    claims,
    merge_retires_and_repoints,
    duplicate_event_ids,
    due_queries,
    due_reads_only_what_is_due,
    due_before_1970,
    events_oldest_first,
    erase,
    erase_covers_merged_profiles,
    erase_races_ingest,
    scan_pagination,
    concurrent_increments,
    concurrent_lead_only_increments,
    concurrent_claims,
    tallies_add_up,
    concurrent_tallies,
    reports_match_the_leads,
    release_moves_an_identity_atomically,
    release_of_a_stale_owner_conflicts,
    release_must_match_a_claim,
);

/// Runs every check in [`CHECKS`], each on a fresh store from `make`; the guard returned with
/// each store is dropped after its check. Panics (naming the check) on the first failure.
pub async fn run_all<F, Fut, G>(mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (Arc<dyn Store>, G)>,
{
    for check in CHECKS {
        let (store, guard) = make().await;
        eprintln!("store conformance: {}", check.name);
        (check.run)(store).await;
        drop(guard);
    }
}
