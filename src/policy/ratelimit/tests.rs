//! The limiter driven as the edge drives it, over an in-memory KV and an
//! explicit clock.

use std::collections::{BTreeMap, HashMap};

use super::*;

const ROUTE: &str = "api";

fn limit(requests: u32, window_s: u32) -> RateLimit {
    RateLimit {
        requests,
        window_s,
        key: KeyKind::Ip,
        scope: Default::default(),
        on_error: None,
    }
}

/// An in-memory KV that records every operation.
#[derive(Default)]
struct Kv {
    data: HashMap<String, String>,
    ttl: HashMap<String, u64>,
    reads: Vec<(u64, String)>,
    writes: Vec<(u64, String)>,
    fail_reads: bool,
    fail_writes: bool,
}

impl Kv {
    fn get(&mut self, key: &str, now: u64) -> Result<Option<String>, &'static str> {
        self.reads.push((now, key.to_string()));
        if self.fail_reads {
            return Err("kv read failed");
        }
        Ok(self.data.get(key).cloned())
    }

    fn put(&mut self, write: &Write, now: u64) -> Result<(), &'static str> {
        self.writes.push((now, write.kv_key.clone()));
        if self.fail_writes {
            return Err("kv write failed");
        }
        self.data.insert(write.kv_key.clone(), write.value.clone());
        self.ttl
            .insert(write.kv_key.clone(), write.expiration_ttl_s);
        Ok(())
    }

    fn entries(&self, key: &str) -> BTreeMap<String, u32> {
        serde_json::from_str(&self.data[key]).unwrap()
    }

    fn times(ops: &[(u64, String)], key: &str) -> Vec<u64> {
        ops.iter()
            .filter(|(_, k)| k == key)
            .map(|(t, _)| *t)
            .collect()
    }
}

/// One read as the edge runs it: get, then report.
fn read(lim: &mut Limiter, kv: &mut Kv, kv_key: &str, now: u64) {
    let got = kv.get(kv_key, now);
    lim.on_read(kv_key, got.as_ref().map(|v| v.as_deref()), now);
}

/// The request path, reads answered at once (nobody else is reading).
fn request(
    lim: &mut Limiter,
    kv: &mut Kv,
    rl: &RateLimit,
    key: Option<&str>,
    now: u64,
) -> Decision {
    for _ in 0..3 {
        match lim.check(ROUTE, rl, key, now) {
            Step::Decided(d) => return d,
            Step::Read { kv_key } => read(lim, kv, &kv_key, now),
            Step::Wait { .. } => panic!("nobody else is reading"),
        }
    }
    panic!("not decided after a read");
}

/// The flush loop at one instant; returns the time to sleep until, if this
/// caller got the trailing flush.
fn flush(lim: &mut Limiter, kv: &mut Kv, now: u64) -> Option<u64> {
    for _ in 0..100 {
        let due = lim.take_due(now);
        for key in &due.reads {
            read(lim, kv, key, now);
        }
        for write in &due.writes {
            let ok = kv.put(write, now).is_ok();
            lim.on_write_result(&write.kv_key, ok, now);
        }
        match due.then() {
            Then::SleepUntil(at) => {
                assert!(at > now);
                return Some(at);
            }
            Then::TakeAgain => {}
            Then::Stop => return None,
        }
    }
    panic!("the flush loop does not end");
}

/// An isolate with its pending trailing flushes, as the edge runs it.
struct Isolate {
    lim: Limiter,
    sleepers: Vec<u64>,
}

impl Isolate {
    fn new(id: &str) -> Isolate {
        Isolate {
            lim: Limiter::new(id),
            sleepers: Vec::new(),
        }
    }

    /// Wakes due sleepers, then serves one request and flushes after it.
    fn serve(&mut self, kv: &mut Kv, rl: &RateLimit, key: Option<&str>, now: u64) -> Decision {
        self.wake(kv, now);
        let d = request(&mut self.lim, kv, rl, key, now);
        self.sleepers.extend(flush(&mut self.lim, kv, now));
        d
    }

    fn wake(&mut self, kv: &mut Kv, now: u64) {
        let (ready, waiting): (Vec<u64>, Vec<u64>) = self.sleepers.iter().partition(|&&t| t <= now);
        self.sleepers = waiting;
        for _ in ready {
            self.sleepers.extend(flush(&mut self.lim, kv, now));
        }
    }
}

fn kv_key(rl: &RateLimit, key: Option<&str>, now: u64) -> String {
    counter_key(ROUTE, rl, key, now).kv_key
}

fn total(lim: &Limiter, kv_key: &str) -> u64 {
    lim.counters[kv_key].total()
}

#[test]
fn concurrent_requests_share_one_read_and_admit_exactly_the_limit() {
    for (stored, expected) in [(None, 5), (Some(r#"{"other":2}"#), 3)] {
        let rl = limit(5, 60);
        let mut kv = Kv::default();
        let key = kv_key(&rl, Some("1.2.3.4"), 1_000);
        if let Some(v) = stored {
            kv.data.insert(key.clone(), v.to_string());
        }
        let mut lim = Limiter::new("me");

        // 40 requests arrive before the read lands: one reads, the rest wait.
        let first = lim.check(ROUTE, &rl, Some("1.2.3.4"), 1_000);
        assert_eq!(
            first,
            Step::Read {
                kv_key: key.clone()
            }
        );
        for _ in 1..40 {
            let step = lim.check(ROUTE, &rl, Some("1.2.3.4"), 1_010);
            assert_eq!(
                step,
                Step::Wait {
                    kv_key: key.clone()
                }
            );
        }
        read(&mut lim, &mut kv, &key, 1_050);
        assert_eq!(kv.reads.len(), 1);

        // Then each is decided in turn.
        let decisions: Vec<Decision> = (0..40)
            .map(|_| match lim.check(ROUTE, &rl, Some("1.2.3.4"), 1_060) {
                Step::Decided(d) => d,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), expected);
        assert!(decisions[..expected].iter().all(|d| d.allowed));
        assert_eq!(decisions[expected - 1].remaining, 0);
        assert_eq!(kv.reads.len(), 1, "no other read on the request path");
    }
}

#[test]
fn a_lost_read_does_not_strand_the_waiters() {
    let rl = limit(2, 60);
    let mut lim = Limiter::new("me");
    assert!(matches!(lim.check(ROUTE, &rl, None, 0), Step::Read { .. }));
    assert!(matches!(
        lim.check(ROUTE, &rl, None, READ_TIMEOUT_MS - 1),
        Step::Wait { .. }
    ));
    // Never reported: after the timeout, requests are decided on what is known.
    let d = lim.check(ROUTE, &rl, None, READ_TIMEOUT_MS);
    assert!(
        matches!(d, Step::Decided(Decision { allowed: true, .. })),
        "{d:?}"
    );
    // A late report still counts.
    let key = kv_key(&rl, None, 0);
    lim.on_read(&key, Ok::<_, ()>(Some(r#"{"x":5}"#)), READ_TIMEOUT_MS + 1);
    assert_eq!(total(&lim, &key), 6);
    assert!(matches!(
        lim.check(ROUTE, &rl, None, READ_TIMEOUT_MS + 2),
        Step::Decided(Decision { allowed: false, .. })
    ));
}

#[test]
fn a_new_window_admits_again_and_old_windows_are_forgotten() {
    let rl = limit(2, 10);
    let mut kv = Kv::default();
    let mut lim = Limiter::new("me");
    let allowed: Vec<bool> = (0..3)
        .map(|i| request(&mut lim, &mut kv, &rl, Some("a"), 9_000 + i).allowed)
        .collect();
    assert_eq!(allowed, [true, true, false]);
    let old_key = kv_key(&rl, Some("a"), 9_000);

    // The next window starts warm: decided at once, a background read is due.
    let step = lim.check(ROUTE, &rl, Some("a"), 10_000);
    assert!(
        matches!(
            step,
            Step::Decided(Decision {
                allowed: true,
                remaining: 1,
                ..
            })
        ),
        "{step:?}"
    );
    let new_key = kv_key(&rl, Some("a"), 10_000);
    assert_ne!(old_key, new_key);
    assert_eq!(lim.take_due(10_000).reads, vec![new_key.clone()]);

    // A cold key in a new window reads first.
    assert!(matches!(
        lim.check(ROUTE, &rl, Some("b"), 10_000),
        Step::Read { .. }
    ));

    // Past the grace, the old window's counter is gone.
    let _ = lim.check(
        ROUTE,
        &rl,
        Some("a"),
        10_000 + WARM_GRACE_MS + SWEEP_INTERVAL_MS,
    );
    assert!(!lim.counters.contains_key(&old_key));
    assert!(lim.counters.contains_key(&new_key));
    assert_eq!(lim.len(), 2);

    // And everything is gone once its window is over.
    let _ = lim.take_due(30_000);
    assert!(lim.is_empty());
}

#[test]
fn the_last_admissions_of_a_window_are_not_written_after_it() {
    let rl = limit(100, 10);
    let mut kv = Kv::default();
    let mut iso = Isolate::new("me");
    iso.serve(&mut kv, &rl, None, 9_000);
    iso.serve(&mut kv, &rl, None, 9_500);
    assert_eq!(iso.sleepers, [10_000]);
    iso.wake(&mut kv, 10_000);
    assert_eq!(kv.writes.len(), 1, "the window is over");
}

#[test]
fn entries_of_other_isolates_reduce_what_is_left() {
    let rl = limit(10, 60);
    let mut kv = Kv::default();
    let key = kv_key(&rl, Some("a"), 0);
    kv.data.insert(key.clone(), r#"{"b":3,"c":4}"#.to_string());
    let mut lim = Limiter::new("me");
    let d = request(&mut lim, &mut kv, &rl, Some("a"), 0);
    assert_eq!((d.allowed, d.remaining), (true, 2));
    let d = request(&mut lim, &mut kv, &rl, Some("a"), 0);
    assert_eq!((d.allowed, d.remaining), (true, 1));
    let _ = request(&mut lim, &mut kv, &rl, Some("a"), 0);
    let d = request(&mut lim, &mut kv, &rl, Some("a"), 0);
    assert_eq!((d.allowed, d.remaining), (false, 0));
}

#[test]
fn two_isolates_converge() {
    let rl = limit(1_000, 60);
    let mut kv = Kv::default();
    let mut a = Isolate::new("a");
    let mut b = Isolate::new("b");
    let key = kv_key(&rl, Some("k"), 0);
    // Interleaved traffic for 5 s: a 3 per 100 ms, b 1 per 100 ms.
    for t in (0..5_000).step_by(100) {
        for _ in 0..3 {
            assert!(a.serve(&mut kv, &rl, Some("k"), t).allowed);
        }
        assert!(b.serve(&mut kv, &rl, Some("k"), t + 50).allowed);
    }
    // While traffic flows, each sees the other within about two seconds.
    assert!(total(&a.lim, &key) >= 150 + 50 - 2 * 10 - 1);
    assert!(total(&b.lim, &key) >= 150 + 50 - 2 * 30 - 1);
    // The trailing flushes, then a refresh read each: both agree with KV.
    a.wake(&mut kv, 6_000);
    b.wake(&mut kv, 6_000);
    assert!(a.sleepers.is_empty() && b.sleepers.is_empty());
    read(&mut a.lim, &mut kv, &key, 7_000);
    read(&mut b.lim, &mut kv, &key, 7_000);
    assert_eq!(
        kv.entries(&key),
        BTreeMap::from([("a".to_string(), 150), ("b".to_string(), 50)])
    );
    assert_eq!(total(&a.lim, &key), 200);
    assert_eq!(total(&b.lim, &key), 200);
}

#[test]
fn over_admission_across_isolates_is_bounded_by_what_they_admit_unseen() {
    // Two isolates of one location (KV visible at once), 10 requests/s each.
    let rl = limit(100, 60);
    let mut kv = Kv::default();
    let mut a = Isolate::new("a");
    let mut b = Isolate::new("b");
    let mut admitted = 0;
    for t in (0..30_000).step_by(100) {
        admitted += u32::from(a.serve(&mut kv, &rl, Some("k"), t).allowed);
        admitted += u32::from(b.serve(&mut kv, &rl, Some("k"), t + 50).allowed);
    }
    // Each sees the other's admissions within about 2 s (one write spacing
    // plus one read spacing): at most 2 s * 10/s unseen per isolate.
    assert!((100..=100 + 2 * 20).contains(&admitted), "{admitted}");
}

#[test]
fn merging_is_idempotent_commutative_and_associative() {
    let x: value::Entries = [("a", 3), ("b", 1)].map(|(k, v)| (k.to_string(), v)).into();
    let y: value::Entries = [("b", 4), ("c", 2)].map(|(k, v)| (k.to_string(), v)).into();
    let z: value::Entries = [("a", 1), ("d", 7)].map(|(k, v)| (k.to_string(), v)).into();
    let join = |p: &value::Entries, q: &value::Entries| {
        let mut r = p.clone();
        value::merge(&mut r, q);
        r
    };
    assert_eq!(join(&x, &x), x);
    assert_eq!(join(&x, &y), join(&y, &x));
    assert_eq!(join(&join(&x, &y), &z), join(&x, &join(&y, &z)));
    assert_eq!(value::total(&join(&x, &y)), 3 + 4 + 2);

    // Through the limiter: the same value twice, or an older one late, changes nothing.
    let rl = limit(100, 60);
    let mut lim = Limiter::new("me");
    let key = kv_key(&rl, None, 0);
    let _ = lim.check(ROUTE, &rl, None, 0);
    lim.on_read(&key, Ok::<_, ()>(Some(r#"{"a":5,"b":2}"#)), 0);
    assert_eq!(total(&lim, &key), 7);
    lim.on_read(&key, Ok::<_, ()>(Some(r#"{"a":5,"b":2}"#)), 1);
    assert_eq!(total(&lim, &key), 7);
    lim.on_read(&key, Ok::<_, ()>(Some(r#"{"a":1}"#)), 2);
    assert_eq!(total(&lim, &key), 7);
    lim.on_read(&key, Ok::<_, ()>(None), 3);
    assert_eq!(total(&lim, &key), 7);
}

#[test]
fn a_restarted_isolate_counts_what_the_old_one_wrote() {
    let rl = limit(5, 60);
    let mut kv = Kv::default();
    let mut old = Isolate::new("old");
    for t in 0..5 {
        assert!(old.serve(&mut kv, &rl, Some("k"), 1_000 + t * 100).allowed);
    }
    // The trailing flush persists the last four.
    old.wake(&mut kv, 2_000);
    drop(old);

    let mut new = Isolate::new("new");
    let d = new.serve(&mut kv, &rl, Some("k"), 3_000);
    assert!(!d.allowed);
    assert_eq!(d.retry_after(), Some(57));
    assert_eq!(kv.writes.len(), 2);
}

#[test]
fn a_burst_writes_each_counter_at_most_once_a_second() {
    let rl = limit(1_000_000, 60);
    let mut kv = Kv::default();
    let mut iso = Isolate::new("me");
    let keys = [Some("x"), Some("y")];
    let mut admitted = 0;
    for t in (0..10_000).step_by(7) {
        for key in keys {
            admitted += u32::from(iso.serve(&mut kv, &rl, key, t).allowed);
        }
    }
    iso.wake(&mut kv, 20_000);
    assert!(iso.sleepers.is_empty());
    for key in keys {
        let times = Kv::times(&kv.writes, &kv_key(&rl, key, 0));
        assert!(times.len() >= 10, "{times:?}");
        assert!(times.len() <= 11, "{times:?}");
        assert!(
            times.windows(2).all(|w| w[1] - w[0] >= WRITE_INTERVAL_MS),
            "{times:?}"
        );
    }
    let persisted: u32 = keys
        .iter()
        .map(|&key| kv.entries(&kv_key(&rl, key, 0))["me"])
        .sum();
    assert_eq!(persisted, admitted);
}

#[test]
fn the_trailing_flush_is_handed_out_once_and_persists_the_final_count() {
    let rl = limit(100, 60);
    let mut kv = Kv::default();
    let mut lim = Limiter::new("me");
    let key = kv_key(&rl, None, 0);
    let _ = request(&mut lim, &mut kv, &rl, None, 0);
    assert_eq!(flush(&mut lim, &mut kv, 0), None, "written at once");
    assert_eq!(kv.entries(&key)["me"], 1);

    let mut handed_out = Vec::new();
    for t in [100, 200, 300, 400, 500] {
        let _ = request(&mut lim, &mut kv, &rl, None, t);
        handed_out.extend(flush(&mut lim, &mut kv, t));
    }
    assert_eq!(handed_out, [1_000], "one caller holds the trailing flush");
    assert_eq!(kv.writes.len(), 1);

    // Woken early by timer jitter: nothing yet, and the duty stays.
    assert_eq!(flush(&mut lim, &mut kv, 999), None);
    assert_eq!(flush(&mut lim, &mut kv, 1_000), None);
    assert_eq!(kv.writes.len(), 2);
    assert_eq!(kv.entries(&key)["me"], 6);
    assert_eq!(kv.ttl[&key], 60 - 1 + TTL_MARGIN_S);
}

#[test]
fn a_lost_trailing_flush_is_taken_over() {
    let rl = limit(100, 60);
    let mut kv = Kv::default();
    let mut lim = Limiter::new("me");
    let _ = request(&mut lim, &mut kv, &rl, None, 0);
    let _ = flush(&mut lim, &mut kv, 0);
    let _ = request(&mut lim, &mut kv, &rl, None, 100);
    assert_eq!(flush(&mut lim, &mut kv, 100), Some(1_000));
    // Its holder never comes back; the next request after that time writes.
    let _ = request(&mut lim, &mut kv, &rl, None, 1_500);
    assert_eq!(flush(&mut lim, &mut kv, 1_500), None);
    assert_eq!(kv.writes.len(), 2);
    assert_eq!(kv.entries(&kv_key(&rl, None, 0))["me"], 3);
}

#[test]
fn a_hot_counter_is_read_at_most_once_a_second_and_an_exhausted_one_only_to_write() {
    let rl = limit(1_000_000, 60);
    let mut kv = Kv::default();
    let mut iso = Isolate::new("me");
    for t in (0..5_000).step_by(50) {
        let _ = iso.serve(&mut kv, &rl, Some("hot"), t);
    }
    let times = Kv::times(&kv.reads, &kv_key(&rl, Some("hot"), 0));
    assert_eq!(times.len(), 5, "{times:?}");
    assert!(
        times.windows(2).all(|w| w[1] - w[0] >= READ_INTERVAL_MS),
        "{times:?}"
    );

    let rl = limit(3, 60);
    let mut kv = Kv::default();
    let mut iso = Isolate::new("me");
    for t in (0..5_000).step_by(50) {
        let _ = iso.serve(&mut kv, &rl, Some("spent"), t);
    }
    // The first read, then one before the trailing write of the last two.
    assert_eq!(
        Kv::times(&kv.reads, &kv_key(&rl, Some("spent"), 0)),
        [0, 1_000]
    );
    assert_eq!(
        Kv::times(&kv.writes, &kv_key(&rl, Some("spent"), 0)),
        [0, 1_000]
    );
}

#[test]
fn kv_read_failures_fail_open_but_keep_the_isolate_exact() {
    let rl = limit(2, 60);
    let mut kv = Kv {
        fail_reads: true,
        ..Kv::default()
    };
    let mut iso = Isolate::new("me");
    let allowed: Vec<bool> = (0..3)
        .map(|i| iso.serve(&mut kv, &rl, Some("k"), i).allowed)
        .collect();
    assert_eq!(allowed, [true, true, false]);

    // The read is retried in the background while the counter is hot.
    let rl = limit(10, 60);
    let _ = iso.serve(&mut kv, &rl, Some("j"), 0);
    let _ = iso.serve(&mut kv, &rl, Some("j"), 1_200);
    let times = Kv::times(&kv.reads, &kv_key(&rl, Some("j"), 0));
    assert_eq!(times, [0, 1_200]);
}

#[test]
fn kv_write_failures_fail_open_and_back_off() {
    let rl = limit(100, 60);
    let mut kv = Kv {
        fail_writes: true,
        ..Kv::default()
    };
    let mut iso = Isolate::new("me");
    for t in (0..8_000).step_by(100) {
        assert!(iso.serve(&mut kv, &rl, None, t).allowed);
    }
    let times = Kv::times(&kv.writes, &kv_key(&rl, None, 0));
    assert_eq!(times, [0, 2_000, 6_000]);

    kv.fail_writes = false;
    iso.wake(&mut kv, 14_000);
    assert_eq!(kv.entries(&kv_key(&rl, None, 0))["me"], 80);
}

#[test]
fn an_unreported_write_is_given_up_and_retried() {
    let rl = limit(100, 60);
    let mut kv = Kv::default();
    let mut lim = Limiter::new("me");
    let _ = request(&mut lim, &mut kv, &rl, None, 0);
    let due = lim.take_due(0);
    assert_eq!(due.writes.len(), 1);
    // Never reported: given up after the timeout, retried after a backoff.
    assert!(lim.take_due(WRITE_TIMEOUT_MS - 1).is_empty());
    let due = lim.take_due(WRITE_TIMEOUT_MS);
    let retry = WRITE_TIMEOUT_MS + 2 * WRITE_INTERVAL_MS;
    assert_eq!(due.then(), Then::SleepUntil(retry));
    let due = lim.take_due(retry);
    assert_eq!(due.reads.len(), 1, "read before writing");
    read(&mut lim, &mut kv, &due.reads[0], retry);
    assert_eq!(lim.take_due(retry).writes.len(), 1);
}

#[test]
fn an_overwritten_entry_is_written_again() {
    let rl = limit(100, 60);
    let mut kv = Kv::default();
    let key = kv_key(&rl, None, 0);
    let mut iso = Isolate::new("me");
    for t in [0, 10, 20] {
        let _ = iso.serve(&mut kv, &rl, None, t);
    }
    iso.wake(&mut kv, 1_000);
    assert_eq!(kv.entries(&key)["me"], 3);
    // Another location's write, made without seeing ours, wins.
    kv.data.insert(key.clone(), r#"{"far":2}"#.to_string());
    let _ = iso.serve(&mut kv, &rl, None, 3_000);
    assert_eq!(
        kv.entries(&key),
        BTreeMap::from([("far".to_string(), 2), ("me".to_string(), 4)])
    );
}

#[test]
fn an_entry_under_this_isolates_id_is_adopted() {
    let rl = limit(5, 60);
    let mut kv = Kv::default();
    kv.data
        .insert(kv_key(&rl, None, 0), r#"{"me":4}"#.to_string());
    let mut lim = Limiter::new("me");
    let d = request(&mut lim, &mut kv, &rl, None, 0);
    assert_eq!((d.allowed, d.remaining), (true, 0));
    assert_eq!(lim.take_due(0).writes[0].value, r#"{"me":5}"#);
}

#[test]
fn key_values_are_hashed_into_bounded_kv_keys() {
    let rl = limit(1, 1);
    let hostile = format!("{}\u{0}:/..\u{202e}", "A".repeat(100_000));
    let k = counter_key(ROUTE, &rl, Some(&hostile), u64::MAX);
    assert!(k.kv_key.len() <= MAX_KV_KEY_LEN, "{}", k.kv_key);
    assert!(!k.kv_key.contains("AAAA"));
    assert!(k.kv_key.starts_with("rl:api:"));

    let ip = counter_key(ROUTE, &limit(1, 60), Some("203.0.113.7"), 120_000);
    assert!(!ip.kv_key.contains("203.0.113.7"));
    let parts: Vec<&str> = ip.kv_key.split(':').collect();
    assert_eq!(parts.len(), 5);
    assert_eq!(
        (parts[0], parts[1], parts[3], parts[4]),
        ("rl", "api", "60", "2")
    );
    assert_eq!(parts[2].len(), 32);
    assert!(parts[2].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!((ip.window_start_ms, ip.window_end_ms), (120_000, 180_000));
    assert_eq!(
        ip.previous_kv_key().unwrap(),
        ip.kv_key.replace(":60:2", ":60:1")
    );

    // Absent values share one counter, distinct from any present value.
    let none = |t| counter_key(ROUTE, &rl, None, t).kv_key;
    assert_eq!(none(0), none(0));
    assert_ne!(none(0), counter_key(ROUTE, &rl, Some(""), 0).kv_key);
    assert_ne!(none(0), counter_key(ROUTE, &rl, Some("-"), 0).kv_key);
    assert_ne!(
        counter_key(ROUTE, &rl, Some("a"), 0).kv_key,
        counter_key(ROUTE, &rl, Some("b"), 0).kv_key
    );
    // Other routes, key kinds or window lengths are other counters.
    assert_ne!(
        counter_key("other", &rl, Some("a"), 0).kv_key,
        counter_key(ROUTE, &rl, Some("a"), 0).kv_key
    );
    let by_header = RateLimit {
        key: KeyKind::parse("header:X-Key").unwrap(),
        ..rl.clone()
    };
    let by_header_lower = RateLimit {
        key: KeyKind::parse("header:x-key").unwrap(),
        ..rl.clone()
    };
    assert_ne!(
        counter_key(ROUTE, &by_header, Some("a"), 0).kv_key,
        counter_key(ROUTE, &rl, Some("a"), 0).kv_key
    );
    assert_eq!(
        counter_key(ROUTE, &by_header, Some("a"), 0).kv_key,
        counter_key(ROUTE, &by_header_lower, Some("a"), 0).kv_key
    );
    assert_ne!(
        counter_key(ROUTE, &limit(1, 2), Some("a"), 0).kv_key,
        counter_key(ROUTE, &rl, Some("a"), 0).kv_key
    );

    // A route id the routes file would reject is hashed too.
    let bad = counter_key(&"é/".repeat(500), &rl, Some("a"), 0);
    assert!(bad.kv_key.starts_with("rl:~"));
    assert!(bad.kv_key.len() <= MAX_KV_KEY_LEN);
}

#[test]
fn key_kinds() {
    assert_eq!(KeyKind::parse("ip"), Some(KeyKind::Ip));
    assert_eq!(KeyKind::parse("sub"), Some(KeyKind::Sub));
    assert_eq!(KeyKind::parse("route"), Some(KeyKind::Route));
    assert_eq!(
        KeyKind::parse("header:X-Api-Key"),
        Some(KeyKind::Header("x-api-key".into()))
    );
    assert_eq!(KeyKind::parse("header:"), None);
    assert_eq!(KeyKind::parse("header:a b"), None);
    assert_eq!(KeyKind::parse("cookie"), None);
    assert_eq!(KeyKind::parse("IP"), None);
    // The spec a counter's name is hashed from: what the file said, lower-cased.
    assert_eq!(
        KeyKind::parse("header:X-Api-Key").unwrap().to_string(),
        "header:x-api-key"
    );
    let parsed: RateLimit =
        serde_json::from_str(r#"{"requests": 1, "window_s": 1, "key": "header:X-A"}"#).unwrap();
    assert_eq!(parsed.key, KeyKind::Header("x-a".into()));
    assert_eq!(serde_json::to_value(&parsed).unwrap()["key"], "header:x-a");
    let bad = serde_json::from_str::<RateLimit>(r#"{"requests": 1, "window_s": 1, "key": "nope"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("rate_limit.key \"nope\" must be ip, sub, consumer, route or header:NAME"),
        "{bad}"
    );

    let headers = HashMap::from([("cf-connecting-ip", "198.51.100.1"), ("x-api-key", "k1")]);
    let header = |name: &str| headers.get(name).copied();
    assert_eq!(
        KeyKind::Ip.value(header, Some("alice")),
        Some("198.51.100.1")
    );
    assert_eq!(KeyKind::Sub.value(header, Some("alice")), Some("alice"));
    assert_eq!(KeyKind::Route.value(header, Some("alice")), None);
    assert_eq!(
        KeyKind::parse("header:X-Api-Key")
            .unwrap()
            .value(header, None),
        Some("k1")
    );
    assert_eq!(
        KeyKind::Header("x-missing".into()).value(header, None),
        None
    );
}

#[test]
fn the_map_is_bounded_and_keeps_the_largest_entries() {
    let rl = limit(1_000_000, 60);
    let mut kv = Kv::default();
    let key = kv_key(&rl, None, 0);
    let big: BTreeMap<String, u32> = (0..1_000u32).map(|i| (format!("iso{i}"), i + 1)).collect();
    kv.data
        .insert(key.clone(), serde_json::to_string(&big).unwrap());
    let mut iso = Isolate::new("me");
    let _ = iso.serve(&mut kv, &rl, None, 0);

    let others = &iso.lim.counters[&key].others;
    assert_eq!(others.len(), MAX_ENTRIES - 1);
    assert_eq!(
        others.values().min(),
        Some(&(1_000 - MAX_ENTRIES as u32 + 2))
    );
    let true_total: u64 = big.values().map(|&v| u64::from(v)).sum::<u64>() + 1;
    assert!(
        total(&iso.lim, &key) < true_total,
        "dropping only under-counts"
    );

    let stored = kv.entries(&key);
    assert_eq!(stored.len(), MAX_ENTRIES);
    assert_eq!(stored["me"], 1, "the writer's own entry is always kept");
    assert!(kv.data[&key].len() < 4 * 1024);

    // Junk members are skipped; oversized values are ignored.
    let parsed = value::parse(
        r#"{"ok":1,"neg":-1,"f":1.5,"s":"2","bad id":3,"~others":9,"big":99999999999}"#,
    )
    .unwrap();
    assert_eq!(
        parsed,
        BTreeMap::from([("big".to_string(), u32::MAX), ("ok".to_string(), 1)])
    );
    assert_eq!(value::parse(&" ".repeat(MAX_VALUE_BYTES + 1)), None);
    assert_eq!(value::parse("[1,2]"), None);
}

#[test]
fn a_corrupt_value_is_ignored_and_replaced() {
    let rl = limit(2, 60);
    let mut kv = Kv::default();
    let key = kv_key(&rl, None, 0);
    kv.data.insert(key.clone(), "not json".to_string());
    let mut iso = Isolate::new("me");
    assert!(iso.serve(&mut kv, &rl, None, 0).allowed);
    assert_eq!(kv.entries(&key), BTreeMap::from([("me".to_string(), 1)]));
}

#[test]
fn headers_and_retry_after() {
    let rl = limit(2, 60);
    let mut kv = Kv::default();
    let mut lim = Limiter::new("me");
    let d = request(&mut lim, &mut kv, &rl, None, 0);
    assert_eq!(
        d,
        Decision {
            allowed: true,
            limit: 2,
            remaining: 1,
            reset_s: 60
        }
    );
    assert_eq!(d.retry_after(), None);
    assert_eq!(
        d.headers(),
        [
            ("ratelimit-limit", "2".to_string()),
            ("ratelimit-remaining", "1".to_string()),
            ("ratelimit-reset", "60".to_string()),
        ]
    );
    let d = request(&mut lim, &mut kv, &rl, None, 1);
    assert_eq!(
        (d.allowed, d.remaining, d.reset_s),
        (true, 0, 60),
        "rounded up"
    );
    let d = request(&mut lim, &mut kv, &rl, None, 59_001);
    assert_eq!(
        d,
        Decision {
            allowed: false,
            limit: 2,
            remaining: 0,
            reset_s: 1
        }
    );
    assert_eq!(d.retry_after(), Some(1));
    assert_eq!(d.headers().last(), Some(&("retry-after", "1".to_string())));
    assert_eq!(d.headers().len(), 4);
    let d = request(&mut lim, &mut kv, &rl, None, 59_999);
    assert_eq!(d.reset_s, 1, "never 0");
}

#[test]
fn expiration_ttl_covers_the_window_and_is_at_least_a_minute() {
    assert_eq!(
        expiration_ttl_s(10_000, 0),
        MIN_TTL_S.max(10 + TTL_MARGIN_S)
    );
    assert_eq!(expiration_ttl_s(3_600_000, 0), 3_600 + TTL_MARGIN_S);
    assert_eq!(expiration_ttl_s(3_600_000, 3_599_999), 1 + TTL_MARGIN_S);
    assert!(expiration_ttl_s(0, 5) >= MIN_TTL_S);

    let rl = limit(5, 3_600);
    let mut kv = Kv::default();
    let mut iso = Isolate::new("me");
    let _ = iso.serve(&mut kv, &rl, None, 1_000);
    assert_eq!(kv.ttl[&kv_key(&rl, None, 1_000)], 3_599 + TTL_MARGIN_S);
}

#[test]
fn the_number_of_counters_is_capped() {
    let rl = limit(5, 3_600);
    let mut kv = Kv::default();
    let mut lim = Limiter::new("me");
    for i in 0..MAX_COUNTERS + 10 {
        let _ = request(&mut lim, &mut kv, &rl, Some(&i.to_string()), i as u64);
    }
    assert!(lim.len() <= MAX_COUNTERS);
    assert!(lim.len() >= MAX_COUNTERS - EVICT_BATCH);
    let newest = kv_key(&rl, Some(&(MAX_COUNTERS + 9).to_string()), 0);
    assert!(lim.counters.contains_key(&newest));
    let oldest = kv_key(&rl, Some("0"), 0);
    assert!(!lim.counters.contains_key(&oldest));
    // Reports for evicted counters are ignored.
    lim.on_read(&oldest, Ok::<_, ()>(Some("{}")), 0);
    lim.on_write_result(&oldest, true, 0);
    assert!(!lim.counters.contains_key(&oldest));
}

#[test]
fn take_due_hands_out_a_bounded_batch() {
    let rl = limit(5, 60);
    let mut kv = Kv::default();
    let mut lim = Limiter::new("me");
    for i in 0..MAX_IO_PER_TAKE + 5 {
        let _ = request(&mut lim, &mut kv, &rl, Some(&i.to_string()), 0);
    }
    let due = lim.take_due(0);
    assert_eq!(due.writes.len(), MAX_IO_PER_TAKE);
    assert_eq!(due.then(), Then::TakeAgain);
    assert_eq!(lim.take_due(0).writes.len(), 5);
}

#[test]
fn degenerate_limits_and_ids_do_not_panic() {
    let mut kv = Kv::default();
    let mut lim = Limiter::new("me");
    let d = request(&mut lim, &mut kv, &limit(0, 60), None, 0);
    assert!(!d.allowed);
    let d = request(&mut lim, &mut kv, &limit(1, 0), None, u64::MAX);
    assert!(d.allowed);
    assert_eq!(d.reset_s, 1);
    let _ = lim.take_due(u64::MAX);

    assert_eq!(Limiter::new("a-b_C9").isolate_id(), "a-b_C9");
    for bad in ["", "has space", "x".repeat(33).as_str(), "~others"] {
        let id = Limiter::new(bad).isolate_id().to_string();
        assert_eq!(id.len(), 16, "{bad:?}");
        assert!(value::is_isolate_id(&id));
    }
}
