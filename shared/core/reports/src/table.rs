//! Plain-text tables of the reports (what `ember report` prints).

use crate::build::{CampaignsReport, FunnelReport, FunnelRow, QualityReport};
use std::fmt::Write;

/// Renders rows under headers, columns padded; the first column left-aligned, the rest right.
pub fn grid(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            if i == 0 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str("  ");
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers);
    out.push('\n');
    out.push_str(&line(&w.iter().map(|n| "-".repeat(*n)).collect::<Vec<_>>()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// A ratio as a percentage with one decimal (`-` when undefined).
pub fn pct(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
}

/// Hours as `5h`, `3d` or `2w` (the resolution of the buckets).
pub fn hours(h: Option<u64>) -> String {
    match h {
        None => "-".into(),
        Some(h) if h < 48 => format!("{h}h"),
        Some(h) if h % 168 == 0 && h >= 60 * 24 => format!("{}w", h / 168),
        Some(h) => format!("{}d", h / 24),
    }
}

fn money(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// The funnel as text.
pub fn funnel(r: &FunnelReport) -> String {
    let mut headers = vec![match r.by {
        crate::By::Channel => "channel".to_string(),
        crate::By::Cohort => "cohort".to_string(),
    }];
    for (i, s) in r.stages.iter().enumerate() {
        headers.push(s.clone());
        if i > 0 {
            headers.push("conv".into());
            headers.push("median".into());
        }
    }
    headers.push("lead→cust".into());
    headers.push("cycle".into());
    let row = |f: &FunnelRow| {
        let mut cells = vec![f.group.clone()];
        for (i, c) in f.stages.iter().enumerate() {
            cells.push(c.leads.to_string());
            if i > 0 {
                cells.push(pct(c.conversion));
                cells.push(hours(c.median_hours));
            }
        }
        cells.push(pct(f.lead_to_customer));
        cells.push(hours(f.sales_cycle_median_hours));
        cells
    };
    let mut rows: Vec<Vec<String>> = r.rows.iter().map(row).collect();
    rows.push(row(&r.total));
    format!("Funnel of leads that became leads {} .. {} (conv: from the previous stage; median: time from it)\n{}", r.from, r.to, grid(&headers, &rows))
}

/// The nurture report as text.
pub fn campaigns(r: &CampaignsReport) -> String {
    let mut out = format!("Campaigns: enrollments begun {} .. {}\n", r.from, r.to);
    if r.campaigns.is_empty() {
        out.push_str("(no enrollments)\n");
    }
    let headers: Vec<String> = [
        "step", "kind", "reached", "active", "sent", "suppr", "deliv", "opened", "clicked", "unsub", "bounced", "conv",
        "exited", "done",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for c in &r.campaigns {
        let _ = writeln!(
            out,
            "\n{}: enrolled {}, active {}, completed {}, converted {}, exited {}, sent {}",
            c.campaign, c.enrolled, c.active, c.completed, c.converted, c.exited, c.sent
        );
        let rows: Vec<Vec<String>> = c
            .steps
            .iter()
            .map(|s| {
                let mut v = vec![s.id.clone().map_or(s.step.to_string(), |id| format!("{} ({id})", s.step)), s.kind.clone()];
                v.extend(
                    [
                        s.reached, s.active, s.sent, s.suppressed, s.delivered, s.opened, s.clicked, s.unsubscribed,
                        s.bounced, s.converted, s.exited, s.completed,
                    ]
                    .iter()
                    .map(i64::to_string),
                );
                v
            })
            .collect();
        out.push_str(&grid(&headers, &rows));
    }
    out
}

/// The quality report as text.
pub fn quality(r: &QualityReport) -> String {
    let mut out = format!(
        "Lead quality of leads that became leads {} .. {} (MQL: {}, sale: {})\n",
        r.from,
        r.to,
        r.mql_stage.as_deref().unwrap_or("-"),
        r.customer_stage.as_deref().unwrap_or("-")
    );
    let headers: Vec<String> = ["month", "new leads", "MQLs", "customers", "reopened"].iter().map(|s| s.to_string()).collect();
    let rows: Vec<Vec<String>> = r
        .months
        .iter()
        .map(|m| vec![m.month.clone(), m.new_leads.to_string(), m.mqls.to_string(), m.customers.to_string(), m.reopened.to_string()])
        .collect();
    out.push_str(&grid(&headers, &rows));
    for m in &r.months {
        for (g, bins) in &m.scores {
            let _ = writeln!(
                out,
                "{} {g}: {}",
                m.month,
                bins.iter().filter(|b| b.leads > 0).map(|b| format!("{}..{}: {}", b.from, b.to, b.leads)).collect::<Vec<_>>().join(", ")
            );
        }
    }
    out.push('\n');
    let headers: Vec<String> =
        ["channel", "new leads", "MQLs", "customers", "cost", "per MQL", "per sale"].iter().map(|s| s.to_string()).collect();
    let rows: Vec<Vec<String>> = r
        .channels
        .iter()
        .map(|c| {
            vec![
                c.channel.clone(),
                c.new_leads.to_string(),
                c.mqls.to_string(),
                c.customers.to_string(),
                money(c.cost),
                money(c.cost_per_mql),
                money(c.cost_per_sale),
            ]
        })
        .collect();
    out.push_str(&grid(&headers, &rows));
    out
}
