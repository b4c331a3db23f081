//! The `Range` header of Heroku's list endpoints and the `Next-Range` of
//! a page that has more after it.

/// A `Range` header (`version ..; order=desc, max=10`), as Heroku's list
/// endpoints take it: the field sorted on, where to start, the order and
/// how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub field: String,
    /// The first value, and whether it is left out (`]3..`).
    pub start: Option<(String, bool)>,
    pub descending: bool,
    pub max: usize,
}

/// Most items one page of a list holds, as Heroku.
pub const MAX_PAGE: usize = 1000;

impl Range {
    /// Parses a `Range` header; `None` when it is empty or not one.
    pub fn parse(header: &str) -> Option<Range> {
        let header = header.trim();
        if header.is_empty() {
            return None;
        }
        let (spec, options) = header.split_once(';').unwrap_or((header, ""));
        let (field, bounds) = spec.trim().split_once(' ').unwrap_or((spec.trim(), ""));
        let start = bounds.trim().split("..").next().unwrap_or("").trim();
        let start = match start {
            "" => None,
            s => match s.strip_prefix(']') {
                Some(rest) => Some((rest.to_owned(), true)),
                None => Some((s.trim_start_matches('[').to_owned(), false)),
            },
        };
        let mut range = Range {
            field: field.to_owned(),
            start,
            descending: false,
            max: 200,
        };
        for opt in options.split([',', ';']) {
            match opt.trim().split_once('=') {
                Some(("order", o)) => range.descending = o.trim() == "desc",
                Some(("max", m)) => {
                    range.max = m.trim().parse().ok()?;
                }
                _ => {}
            }
        }
        range.max = range.max.clamp(1, MAX_PAGE);
        Some(range)
    }

    /// The header that asks for the page after one that ended at `last`.
    pub fn next(&self, last: &str) -> String {
        format!(
            "{} ]{last}..; max={}, order={}",
            self.field,
            self.max,
            if self.descending { "desc" } else { "asc" }
        )
    }

    /// One page of `items` (sorted ascending by `key`), and the
    /// `Next-Range` header when more follow.
    pub fn page<T: Clone>(&self, items: &[T], key: impl Fn(&T) -> u64) -> (Vec<T>, Option<String>) {
        let bound = self.start.as_ref().and_then(|(v, excl)| {
            v.trim_start_matches('v')
                .parse::<u64>()
                .ok()
                .map(|v| (v, *excl))
        });
        let keep = |k: u64| match (bound, self.descending) {
            (None, _) => true,
            (Some((v, true)), false) => k > v,
            (Some((v, false)), false) => k >= v,
            (Some((v, true)), true) => k < v,
            (Some((v, false)), true) => k <= v,
        };
        let mut all: Vec<T> = items.iter().filter(|i| keep(key(i))).cloned().collect();
        if self.descending {
            all.reverse();
        }
        let more = all.len() > self.max;
        all.truncate(self.max);
        let next = match (more, all.last()) {
            (true, Some(last)) => Some(self.next(&key(last).to_string())),
            _ => None,
        };
        (all, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_the_heroku_cli_sends_them() {
        let r = Range::parse("version ..; order=desc,max=1").unwrap();
        assert_eq!(
            (r.field.as_str(), r.descending, r.max),
            ("version", true, 1)
        );
        assert_eq!(r.start, None);
        let r = Range::parse("version ..; max=15, order=desc").unwrap();
        assert_eq!((r.descending, r.max), (true, 15));
        let r = Range::parse("id ]3..; max=2").unwrap();
        assert_eq!((r.start, r.descending), (Some(("3".into(), true)), false));
        assert_eq!(Range::parse(""), None);
        assert_eq!(Range::parse("version ..; max=lots"), None);
    }

    #[test]
    fn pages_follow_each_other_by_next_range() {
        let items: Vec<u64> = (1..=5).collect();
        let r = Range::parse("version ..; max=2, order=desc").unwrap();
        let (page, next) = r.page(&items, |v| *v);
        assert_eq!(page, vec![5, 4]);
        let next = next.unwrap();
        assert_eq!(next, "version ]4..; max=2, order=desc");
        let (page, next) = Range::parse(&next).unwrap().page(&items, |v| *v);
        assert_eq!(page, vec![3, 2]);
        let (page, next) = Range::parse(&next.unwrap()).unwrap().page(&items, |v| *v);
        assert_eq!((page, next), (vec![1], None));
        let (page, next) = Range::parse("version ..; max=3")
            .unwrap()
            .page(&items, |v| *v);
        assert_eq!(page, vec![1, 2, 3]);
        assert_eq!(next.as_deref(), Some("version ]3..; max=3, order=asc"));
    }
}
