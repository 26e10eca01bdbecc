//! # ember-reports — funnel, nurture and lead-quality reports
//!
//! Reports are never computed by reading every lead. Each commit carries the counter
//! increments it causes ([`facts::tallies`]: the difference between the lead's facts after and
//! before, a pure function of the two states), and the store applies them in the same atomic
//! write as the lead: SQLite in the commit's transaction, DynamoDB as extra `Update … ADD`
//! items of the commit's `TransactWriteItems`. A report reads the counters of a day range (a
//! few `Query` calls per month on DynamoDB, never a `Scan`) and [`build`] turns them into the
//! report structs that the API serves as JSON, the CLI prints ([`table`]) and the dashboard
//! draws. See [`facts`] for the counter keys and why they are dated as they are.


pub mod build;
pub mod facts;
pub mod table;

pub use build::{campaigns, funnel, parse_costs, quality, By, CampaignsReport, Costs, FunnelReport, QualityReport};
pub use facts::{tallies, Tally};

use chrono::NaiveDate;

/// A report's day range, inclusive, in the model's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First day of the range, read from `YYYY-MM-DD` (or the 1st of a `YYYY-MM`).
    pub from: NaiveDate,
    /// Last day of the range, included; never before `from`.
    pub to: NaiveDate,
}

impl Period {
    /// Reads `from` / `to` (`YYYY-MM-DD`, or `YYYY-MM` for a whole month); defaults: `to` is
    /// `today`, `from` the first day of the month eleven months before `to` (a year of months).
    pub fn parse(from: Option<&str>, to: Option<&str>, today: NaiveDate) -> Result<Period, String> {
        use chrono::{Datelike, Months};
        let day = |s: &str, end: bool| -> Result<NaiveDate, String> {
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Ok(d);
            }
            let first = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
                .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD or YYYY-MM)"))?;
            Ok(if end { first + Months::new(1) - chrono::Days::new(1) } else { first })
        };
        let to = match to {
            Some(t) => day(t, true)?,
            None => today,
        };
        let from = match from {
            Some(f) => day(f, false)?,
            None => NaiveDate::from_ymd_opt(to.year(), to.month(), 1).unwrap_or(to) - Months::new(11),
        };
        if from > to {
            return Err(format!("`from` ({from}) is after `to` ({to})"));
        }
        if (to - from).num_days() > 3 * 366 {
            return Err("a report covers at most three years".into());
        }
        Ok(Period { from, to })
    }

    /// The months (`YYYY-MM`) the period touches, in order.
    pub fn months(&self) -> Vec<String> {
        use chrono::{Datelike, Months};
        let mut m = NaiveDate::from_ymd_opt(self.from.year(), self.from.month(), 1).unwrap_or(self.from);
        let mut out = Vec::new();
        while m <= self.to {
            out.push(m.format("%Y-%m").to_string());
            m = m + Months::new(1);
        }
        out
    }
}
