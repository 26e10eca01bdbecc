//! # ember-analytics — pure analytics over Ember's history
//!
//! No I/O beyond what callers hand in (readers, strings), no clock reads, no async:
//!
//! - [`plan`]: how many leads, MQLs and SQLs a sales target needs, from given or observed rates.
//! - [`rows`]: history rows — JSONL events, CSV lead exports (with deterministic event ids) and
//!   outcome files — parsed into the event shape the ingest service takes.
//! - [`calibrate`]: per activity, how many leads did it, their conversion rate, the lift over the
//!   average, and suggested points; writes a calibrated copy of a model.
//! - [`backtest`]: replays history through the real scoring engine and measures the MQL
//!   definition's precision, recall and lead time against the leads that bought.
//! - [`simulate`]: a synthetic population with a known ground truth.


pub mod backtest;
pub mod calibrate;
pub mod plan;
pub mod rng;
pub mod rows;
pub mod simulate;
