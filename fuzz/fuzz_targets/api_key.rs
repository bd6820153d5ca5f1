//! API keys: the format and checksum check every request's key goes through
//! before any KV read, key generation, hashing, and the per-isolate lookup cache.
//!
//! Input: byte 0 picks the mode; the rest is a candidate key (any bytes, read as
//! UTF-8 lossily) or the random part of a generated key.
//!
//! Checks (besides no panic): a well-formed key has the prefix, the length and
//! the alphabet; a generated key is always well formed, and changing any one
//! character of it (to another alphabet character) never is, unless the
//! checksum collides (2^-32; such an input would be reported); hashes are 64
//! lower-case hex digits; the cache never holds more than its bound.
#![no_main]

use std::cell::RefCell;

use edge_gateway::policy::consumer::{
    generate_key, hash_key, is_well_formed, Cached, ConsumerRef, KeyCache, KEY_LEN, KEY_PREFIX,
    KEY_RANDOM_BYTES, MAX_CACHED_KEYS,
};
use libfuzzer_sys::fuzz_target;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

thread_local! {
    static CACHE: RefCell<(KeyCache, u64)> = RefCell::new((KeyCache::new(), 0));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let candidate = String::from_utf8_lossy(rest);
            if is_well_formed(&candidate) {
                assert_eq!(candidate.len(), KEY_LEN);
                assert!(candidate.starts_with(KEY_PREFIX));
                assert!(candidate.as_bytes()[KEY_PREFIX.len()..]
                    .iter()
                    .all(|b| ALPHABET.contains(b)));
            }
            let h = hash_key(&candidate);
            assert_eq!(h.len(), 64);
            assert!(h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        1 => {
            let mut random = [0u8; KEY_RANDOM_BYTES];
            for (i, b) in rest.iter().take(KEY_RANDOM_BYTES).enumerate() {
                random[i] = *b;
            }
            let key = generate_key(&random);
            assert!(is_well_formed(&key), "{key}");
            if let Some((&at, &to)) = rest.get(KEY_RANDOM_BYTES).zip(rest.get(KEY_RANDOM_BYTES + 1)) {
                let i = KEY_PREFIX.len() + usize::from(at) % (KEY_LEN - KEY_PREFIX.len());
                let c = ALPHABET[usize::from(to) % ALPHABET.len()];
                let mut typo = key.clone().into_bytes();
                if typo[i] != c {
                    typo[i] = c;
                    let typo = String::from_utf8(typo).expect("ASCII");
                    assert!(!is_well_formed(&typo), "{key} -> {typo}");
                }
            }
        }
        _ => CACHE.with(|cell| {
            let (cache, now) = &mut *cell.borrow_mut();
            for chunk in rest.chunks(3) {
                *now += u64::from(chunk[0]) * 97;
                let hash = format!("{:02x}", chunk.get(1).copied().unwrap_or(0));
                let found = (chunk.get(2).copied().unwrap_or(0) % 2 == 0).then(|| ConsumerRef {
                    id: "c".into(),
                    plan: "p".into(),
                });
                cache.put(&hash, found.clone(), *now);
                match (cache.get(&hash, *now), found) {
                    (Cached::Found(c), Some(f)) => assert_eq!(c, f),
                    (Cached::Unknown, None) => {}
                    (got, want) => panic!("just put {want:?}, got {got:?}"),
                }
                assert!(cache.len() <= MAX_CACHED_KEYS);
            }
        }),
    }
});
