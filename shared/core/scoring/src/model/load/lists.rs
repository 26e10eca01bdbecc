//! `lists`: the named lists `in_list` tests against; checks each is a list of strings (kept lower-cased).

use super::*;

impl Ctx<'_> {
    pub(super) fn lists(&mut self, v: Option<&Value>) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let Value::Mapping(m) = v else {
            self.err("lists", format!("expected a map of named lists, found {}", kind_of(v)));
            return out;
        };
        for (k, l) in m {
            let name = key_str(k);
            let p = join("lists", &name);
            let Value::Sequence(items) = l else {
                self.err(&p, format!("expected a list, found {}", kind_of(l)));
                continue;
            };
            let vals = items.iter().enumerate().filter_map(|(i, x)| self.string(x, &format!("{p}[{i}]")).map(|s| s.to_lowercase())).collect();
            out.insert(name, vals);
        }
        out
    }
}
