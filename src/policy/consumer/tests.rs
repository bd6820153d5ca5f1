use super::*;
use crate::config::QuotaPeriod;

/// 2024-02-29T23:59:59.999Z and its neighbours, in ms.
const LEAP_DAY_END: u64 = 1_709_251_199_999;

fn ms(y: i64, m: u32, d: u32) -> u64 {
    days_from_civil(y, m, d) as u64 * DAY_MS
}

#[test]
fn keys_have_the_prefix_length_and_a_checksum() {
    let key = generate_key(&[7u8; KEY_RANDOM_BYTES]);
    assert!(key.starts_with("gwk_"), "{key}");
    assert_eq!(key.len(), KEY_LEN);
    assert_eq!(KEY_LEN, 42);
    assert!(is_well_formed(&key));
    // Another random part, another key, also well formed.
    let other = generate_key(&[8u8; KEY_RANDOM_BYTES]);
    assert_ne!(key, other);
    assert!(is_well_formed(&other));
}

#[test]
fn a_mistyped_or_made_up_key_fails_the_checksum() {
    let key = generate_key(&[42u8; KEY_RANDOM_BYTES]);
    // Every single-character change of the random part or the checksum.
    for i in KEY_PREFIX.len()..key.len() {
        for c in ['A', 'z', '0', '-', '_'] {
            let mut b = key.clone().into_bytes();
            if b[i] == c as u8 {
                continue;
            }
            b[i] = c as u8;
            let typo = String::from_utf8(b).unwrap();
            assert!(!is_well_formed(&typo), "{typo}");
        }
    }
    for bad in [
        "",
        "gwk_",
        &key[..KEY_LEN - 1],
        &format!("{key}x"),
        &key.replacen("gwk_", "gwx_", 1),
        &key.replacen("gwk_", "GWK_", 1),
        "gwk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "gwk_ééééééééééééééééééé",
        "Bearer gwk_AAAA",
    ] {
        assert!(!is_well_formed(bad), "{bad}");
    }
    // Two transposed characters.
    let mut b = key.clone().into_bytes();
    let (i, j) = (10, 11);
    if b[i] != b[j] {
        b.swap(i, j);
        assert!(!is_well_formed(&String::from_utf8(b).unwrap()));
    }
}

#[test]
fn keys_carry_192_random_bits() {
    // Every random byte shows in the key: change one, the key changes.
    let base = [0u8; KEY_RANDOM_BYTES];
    let k0 = generate_key(&base);
    for i in 0..KEY_RANDOM_BYTES {
        let mut r = base;
        r[i] = 1;
        assert_ne!(generate_key(&r), k0, "byte {i}");
    }
    const { assert!(KEY_RANDOM_BYTES * 8 >= 128) };
}

#[test]
fn the_hash_is_sha256_hex_and_never_the_key() {
    let key = generate_key(&[1u8; KEY_RANDOM_BYTES]);
    let h = hash_key(&key);
    assert_eq!(h.len(), 64);
    assert!(h
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert!(!h.contains(&key[4..12]));
    assert_eq!(h, hash_key(&key));
    assert_ne!(h, hash_key(&generate_key(&[2u8; KEY_RANDOM_BYTES])));
    // SHA-256("abc"), the FIPS 180-2 example.
    assert_eq!(
        hash_key("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn ids_and_key_ids() {
    for ok in ["acme", "a", "A.b_c-9", &"x".repeat(64)] {
        assert!(is_consumer_id(ok), "{ok}");
    }
    for bad in ["", "a b", "a/b", "ä", &"x".repeat(65), "a:b", "a\0"] {
        assert!(!is_consumer_id(bad), "{bad}");
    }
    let id = key_id(&[3u8; 9]);
    assert!(is_key_id(&id), "{id}");
    assert!(!is_key_id("k_short"));
    assert!(!is_key_id("x_AAAAAAAAAAAA"));
}

#[test]
fn the_admin_view_has_no_hash() {
    let record = ConsumerRecord {
        id: "acme".into(),
        plan: "pro".into(),
        metadata: [("team".to_string(), "billing".to_string())].into(),
        created: 1,
        keys: vec![StoredKey {
            key_id: "k_AAAAAAAAAAAA".into(),
            created: 2,
            last4: "wxyz".into(),
            hash: "ab".repeat(32),
        }],
    };
    let view = record.view().to_string();
    assert!(!view.contains(&"ab".repeat(32)));
    assert!(view.contains("wxyz") && view.contains("k_AAAAAAAAAAAA") && view.contains("billing"));
}

#[test]
fn metadata_is_bounded() {
    let mut m = BTreeMap::new();
    m.insert("team".to_string(), "x".repeat(MAX_METADATA_VALUE));
    assert!(check_metadata(&m).is_ok());
    m.insert("team".to_string(), "x".repeat(MAX_METADATA_VALUE + 1));
    assert!(check_metadata(&m).is_err());
    let many: BTreeMap<String, String> = (0..=MAX_METADATA)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    assert!(check_metadata(&many).is_err());
    assert!(check_metadata(&[(String::new(), "v".to_string())].into()).is_err());
}

#[test]
fn the_key_cache_remembers_found_keys_longer_than_unknown_ones() {
    let mut cache = KeyCache::new();
    let c = ConsumerRef {
        id: "acme".into(),
        plan: "pro".into(),
    };
    cache.put("found", Some(c.clone()), 1_000);
    cache.put("unknown", None, 1_000);
    assert_eq!(cache.get("found", 1_000), Cached::Found(c.clone()));
    assert_eq!(cache.get("unknown", 1_000), Cached::Unknown);
    assert_eq!(cache.get("other", 1_000), Cached::Miss);
    assert_eq!(cache.get("unknown", 1_000 + NEGATIVE_TTL_MS), Cached::Miss);
    assert_eq!(
        cache.get("found", 1_000 + NEGATIVE_TTL_MS),
        Cached::Found(c.clone())
    );
    assert_eq!(cache.get("found", 1_000 + POSITIVE_TTL_MS), Cached::Miss);
    const { assert!(POSITIVE_TTL_MS <= 60_000, "the contract bound") };
    // A revocation in this isolate holds at once.
    cache.put("found", None, 2_000);
    assert_eq!(cache.get("found", 2_000), Cached::Unknown);
}

#[test]
fn a_flood_of_unknown_keys_does_not_evict_known_ones_or_grow_without_bound() {
    let mut cache = KeyCache::new();
    let c = ConsumerRef {
        id: "acme".into(),
        plan: "pro".into(),
    };
    cache.put("real", Some(c.clone()), 0);
    for i in 0..(MAX_CACHED_KEYS * 3) {
        cache.put(&format!("made-up-{i}"), None, 1);
    }
    assert!(cache.len() <= MAX_CACHED_KEYS);
    assert_eq!(cache.get("real", 2), Cached::Found(c));
}

#[test]
fn day_periods_are_utc_days() {
    assert_eq!(
        period_bounds(LEAP_DAY_END, QuotaPeriod::Day),
        (ms(2024, 2, 29), ms(2024, 3, 1))
    );
    assert_eq!(
        period_bounds(LEAP_DAY_END + 1, QuotaPeriod::Day),
        (ms(2024, 3, 1), ms(2024, 3, 2))
    );
    assert_eq!(period_bounds(0, QuotaPeriod::Day), (0, DAY_MS));
    assert_eq!(ms(2024, 3, 1), LEAP_DAY_END + 1);
}

#[test]
fn month_periods_are_utc_calendar_months() {
    // February of a leap year, and the instant it ends.
    assert_eq!(
        period_bounds(LEAP_DAY_END, QuotaPeriod::Month),
        (ms(2024, 2, 1), ms(2024, 3, 1))
    );
    assert_eq!(
        period_bounds(LEAP_DAY_END + 1, QuotaPeriod::Month),
        (ms(2024, 3, 1), ms(2024, 4, 1))
    );
    // December rolls into January of the next year.
    let new_year = ms(2027, 1, 1);
    assert_eq!(
        period_bounds(new_year - 1, QuotaPeriod::Month),
        (ms(2026, 12, 1), new_year)
    );
    assert_eq!(
        period_bounds(new_year, QuotaPeriod::Month),
        (new_year, ms(2027, 2, 1))
    );
    // A non-leap February has 28 days; 2100 is not a leap year, 2000 is.
    for (y, days) in [(2023, 28), (2024, 29), (2100, 28), (2000, 29)] {
        let (s, e) = period_bounds(ms(y, 2, 10), QuotaPeriod::Month);
        assert_eq!((e - s) / DAY_MS, days, "{y}");
    }
    // 1970-01-01 is day 0; a known date: 2026-12-01 is day 20788.
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2026, 12, 1), 20_788);
}

#[test]
fn every_instant_lies_in_its_period() {
    let mut t = ms(2023, 12, 30);
    let end = ms(2025, 1, 3);
    while t < end {
        for period in [QuotaPeriod::Day, QuotaPeriod::Month] {
            let (s, e) = period_bounds(t, period);
            assert!(s <= t && t < e, "{t} {period:?}");
            assert_eq!(s % DAY_MS, 0);
            assert_eq!(period_bounds(e, period).0, e, "periods tile");
        }
        t += 7 * 3_600_000 + 123;
    }
}

#[test]
fn quota_counters_are_short_object_names() {
    let long = "x".repeat(64);
    let c = quota_counter(&long, QuotaPeriod::Month);
    assert!(c.len() <= crate::policy::ratelimit::global::MAX_COUNTER_ID_LEN);
    assert_ne!(
        quota_counter("a", QuotaPeriod::Day),
        quota_counter("a", QuotaPeriod::Month)
    );
}
