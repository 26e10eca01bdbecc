//! `email`: the sender settings; checks that `from` has an address, the frequency cap and the quiet
//! hours (HH:MM).

use super::*;

impl Ctx<'_> {
    pub(super) fn email(&mut self, v: &Value) -> Option<EmailSettings> {
        let m = self.map(v, "email", &["from", "reply_to", "configuration_set", "frequency_cap", "quiet_hours"])?;
        let g = |k: &str| m.get(Value::String(k.into()));
        let from = match g("from") {
            Some(x) => self.string(x, "email.from").unwrap_or_default(),
            None => {
                self.err("email.from", "is missing");
                String::new()
            }
        };
        if !from.is_empty() && !from.contains('@') {
            self.err("email.from", format!("`{from}` has no email address"));
        }
        let reply_to = g("reply_to").and_then(|x| self.string(x, "email.reply_to"));
        let configuration_set = g("configuration_set").and_then(|x| self.string(x, "email.configuration_set"));
        let frequency_cap = g("frequency_cap").and_then(|f| {
            let fm = self.map(f, "email.frequency_cap", &["max", "per"])?;
            let max = fm.get(Value::String("max".into())).and_then(|x| self.positive_u32(x, "email.frequency_cap.max"));
            let per = fm.get(Value::String("per".into())).and_then(|x| self.span(x, "email.frequency_cap.per", true));
            if fm.get(Value::String("max".into())).is_none() {
                self.err("email.frequency_cap.max", "is missing");
            }
            if fm.get(Value::String("per".into())).is_none() {
                self.err("email.frequency_cap.per", "is missing");
            }
            Some((max?, per?))
        });
        let quiet_hours = g("quiet_hours").and_then(|q| {
            let qm = self.map(q, "email.quiet_hours", &["start", "end"])?;
            let t = |cx: &mut Ctx, k: &str| {
                let p = join("email.quiet_hours", k);
                let Some(x) = qm.get(Value::String(k.into())) else {
                    cx.err(&p, "is missing (HH:MM)");
                    return None;
                };
                let s = match x {
                    Value::Number(n) => {
                        // YAML 1.1 readers turn 21:00 into a sexagesimal number; accept it.
                        let mins = n.as_i64().unwrap_or(-1);
                        format!("{:02}:{:02}", mins / 60, mins % 60)
                    }
                    other => cx.string(other, &p)?,
                };
                match chrono::NaiveTime::parse_from_str(&s, "%H:%M") {
                    Ok(t) => Some(t),
                    Err(_) => {
                        cx.err(&p, format!("`{s}` is not a time of day (HH:MM)"));
                        None
                    }
                }
            };
            let s = t(self, "start");
            let e = t(self, "end");
            Some((s?, e?))
        });
        Some(EmailSettings { from, reply_to, configuration_set, frequency_cap, quiet_hours })
    }
}
