//! History import rows (`ember import`): the first byte picks the format — a JSONL event line,
//! a CSV lead export (header line, then rows) or an outcomes file — and the rest is parsed and
//! validated as the CLI does. No input may panic.
#![no_main]

use ember_analytics::rows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let now = "2026-03-02T09:00:00Z".parse().unwrap();
    match mode % 3 {
        0 => {
            for line in text.lines() {
                if let Ok(raw) = rows::parse_event_line(line) {
                    if let Ok(e) = rows::validate_history(&raw, now) {
                        let _ = rows::lead_key(&e);
                    }
                }
            }
        }
        1 => {
            let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
            let Ok(headers) = rdr.headers() else { return };
            let headers: Vec<String> = headers.iter().map(String::from).collect();
            let Ok(layout) = rows::CsvLayout::new(&headers, &Default::default()) else { return };
            let _ = layout.ignored();
            for rec in rdr.records().take(64) {
                let Ok(r) = rec else { continue };
                let fields: Vec<&str> = r.iter().collect();
                if let Ok(raw) = layout.row(&fields) {
                    let _ = rows::validate_history(&raw, now);
                }
            }
        }
        _ => {
            let _ = rows::parse_outcomes(text);
        }
    }
});
