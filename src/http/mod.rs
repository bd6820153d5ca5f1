//! HTTP rules that are the gateway's own: paths, headers, request ids, problem responses.
pub mod headers;
pub mod path;
pub mod problem;
pub mod request_id;

/// Read access to a request's or response's headers, whatever holds them.
///
/// The edge implements it over the runtime's `Headers`; tests over a list.
pub trait HeaderView {
    /// The value of a header (names are matched case-insensitively), if present.
    fn get(&self, name: &str) -> Option<String>;
    /// The names of the headers present, lower-cased, in any order (a name may repeat).
    fn names(&self) -> Vec<String>;
}

impl HeaderView for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
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
