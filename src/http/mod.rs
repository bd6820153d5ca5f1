//! HTTP rules that are the gateway's own: paths, headers, request ids, problem responses.
pub mod headers;
pub mod path;
pub mod problem;
pub mod request_id;

/// Read access to a request's or response's headers, whatever holds them.
///
/// The edge implements it over the headers it read out of the runtime in one
/// call; tests over a list.
pub trait HeaderView {
    /// The value of a header (names are matched case-insensitively), if present.
    fn get(&self, name: &str) -> Option<String>;
    /// The names of the headers present, lower-cased, in any order (a name may repeat).
    fn names(&self) -> Vec<String>;
}

/// The value of `name` among header entries, as `Headers.get` answers it: the
/// values of every entry with that name (matched case-insensitively), joined by ", ".
pub fn combined_value<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    name: &str,
) -> Option<String> {
    let mut values = entries
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v);
    let mut value = values.next()?.to_string();
    for v in values {
        value.push_str(", ");
        value.push_str(v);
    }
    Some(value)
}

impl HeaderView for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<String> {
        combined_value(self.iter().copied(), name)
    }

    fn names(&self) -> Vec<String> {
        self.iter().map(|(n, _)| n.to_ascii_lowercase()).collect()
    }
}

impl<const N: usize> HeaderView for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        HeaderView::get(self.as_slice(), name)
    }

    fn names(&self) -> Vec<String> {
        HeaderView::names(self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderView;

    #[test]
    fn a_repeated_name_is_one_value_joined_as_headers_get_joins_it() {
        let h = [
            ("Accept", "a"),
            ("x-one", "1"),
            ("accept", "b"),
            ("ACCEPT", ""),
        ];
        assert_eq!(h.get("accept").as_deref(), Some("a, b, "));
        assert_eq!(h.get("X-One").as_deref(), Some("1"));
        assert_eq!(h.get("missing"), None);
    }
}
