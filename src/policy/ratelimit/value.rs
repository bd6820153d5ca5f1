//! The KV value of a counter: a bounded G-counter, `{"<isolate id>": count, ...}`.
//!
//! Every isolate owns one entry and only ever raises it; a merge takes the
//! per-entry maximum, so merging is commutative, associative and idempotent and
//! a value read twice, late or out of order does no harm. The map keeps at most
//! [`MAX_ENTRIES`] entries, the largest ones; the rest are dropped (not folded:
//! see the module documentation for why), which can only make the total smaller
//! than the truth, never larger.

use std::collections::BTreeMap;

/// Most entries a stored value holds (the writer's own included), and most
/// entries of other isolates an isolate remembers per counter, plus its own.
pub const MAX_ENTRIES: usize = 64;

/// A stored value longer than this is ignored as corrupt (a full map of
/// [`MAX_ENTRIES`] is about 3 KiB).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Entries by isolate id.
pub(super) type Entries = BTreeMap<String, u32>;

/// Isolate ids are 1 to 32 characters from `[A-Za-z0-9_-]`.
pub(super) fn is_isolate_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses a stored value. Members that are not an isolate id with a
/// non-negative integer count are skipped (counts above `u32::MAX` saturate);
/// `None` when the text is not a JSON object or is longer than
/// [`MAX_VALUE_BYTES`]. The result keeps the [`MAX_ENTRIES`] largest entries.
pub(super) fn parse(text: &str) -> Option<Entries> {
    if text.len() > MAX_VALUE_BYTES {
        return None;
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
    let mut entries: Entries = object
        .into_iter()
        .filter(|(id, _)| is_isolate_id(id))
        .filter_map(|(id, count)| {
            let count = count.as_u64()?;
            Some((id, u32::try_from(count).unwrap_or(u32::MAX)))
        })
        .collect();
    truncate(&mut entries, MAX_ENTRIES);
    Some(entries)
}

/// Raises every entry of `into` to at least its value in `from`.
pub(super) fn merge(into: &mut Entries, from: &Entries) {
    for (id, &count) in from {
        let slot = into.entry(id.clone()).or_insert(0);
        *slot = (*slot).max(count);
    }
}

/// Keeps the `cap` largest entries (ties: the smaller id wins), drops the rest.
pub(super) fn truncate(entries: &mut Entries, cap: usize) {
    if entries.len() <= cap {
        return;
    }
    let mut ranked: Vec<(u32, String)> = std::mem::take(entries)
        .into_iter()
        .map(|(id, count)| (count, id))
        .collect();
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranked.truncate(cap);
    *entries = ranked.into_iter().map(|(count, id)| (id, count)).collect();
}

/// The sum of the entries.
pub(super) fn total(entries: &Entries) -> u64 {
    entries.values().map(|&c| u64::from(c)).sum()
}

/// The value an isolate writes: the others it knows (at most
/// `MAX_ENTRIES - 1`, which the caller guarantees) and its own entry.
pub(super) fn render(others: &Entries, own_id: &str, own: u32) -> String {
    let mut map: BTreeMap<&str, u32> = others
        .iter()
        .filter(|(id, _)| id.as_str() != own_id)
        .map(|(id, &count)| (id.as_str(), count))
        .collect();
    map.insert(own_id, own);
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_string())
}
