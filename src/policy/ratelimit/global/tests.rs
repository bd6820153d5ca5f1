//! The lease protocol driven over an in-memory object, with explicit clocks:
//! concurrent requesters, dead holders, window roll-over, failures, cost,
//! and exactness over random interleavings.

use std::collections::{BTreeMap, VecDeque};

use super::*;

const T0: u64 = 1_800_000_000_000;
const WINDOW: u64 = 60_000;

fn ask(limit: u64, now: u64) -> Ask<'static> {
    let start = now / WINDOW * WINDOW;
    Ask {
        counter: "rl:api:abc:60",
        start_ms: start,
        end_ms: start + WINDOW,
        limit,
    }
}

fn call(holder: &str, start: u64, limit: u64, want: u64, give_back: u64) -> LeaseCall {
    LeaseCall {
        counter: "c".into(),
        start_ms: start,
        end_ms: start + WINDOW,
        limit,
        holder: holder.into(),
        want,
        give_back,
    }
}

/// One request decided against an object that answers at once.
fn request(leases: &mut Leases, book: &mut Book, ask: &Ask<'_>, now: u64) -> (Verdict, u32) {
    let mut ticket = Ticket::default();
    let mut calls = 0;
    loop {
        match leases.acquire(ask, now, &mut ticket) {
            Acquire::Decided(v) => return (v, calls),
            Acquire::Call(c) => {
                calls += 1;
                let reply = book.apply(&c.body, now);
                leases.on_reply(&c, Ok(reply), now);
            }
            Acquire::Wait => panic!("nothing is in flight"),
        }
    }
}

fn admitted(v: Verdict) -> bool {
    matches!(v, Verdict::Admit { .. })
}

// --- the object ---------------------------------------------------------------

#[test]
fn the_object_grants_half_of_what_is_left_and_never_beyond_the_limit() {
    let mut book = Book::default();
    let mut total = 0;
    let mut grants = Vec::new();
    for i in 0..20 {
        let r = book.apply(&call(&format!("h{i}"), T0, 50, 1_000, 0), T0);
        total += r.granted;
        grants.push(r.granted);
        assert_eq!(r.available, 50 - total);
    }
    assert_eq!(total, 50);
    assert_eq!(&grants[..7], &[25, 13, 6, 3, 2, 1, 0]);
    let p = &book.periods[&T0];
    assert_eq!((p.granted, p.returned, p.used()), (50, 0, 50));
}

#[test]
fn a_holder_gives_back_at_most_what_it_was_granted() {
    let mut book = Book::default();
    let r = book.apply(&call("a", T0, 10, 4, 0), T0);
    assert_eq!(r.granted, 4);
    // "b" was granted nothing: its return creates no budget.
    let r = book.apply(&call("b", T0, 10, 0, 100), T0);
    assert_eq!((r.granted, r.available), (0, 6));
    // "a" returns more than it holds: only its 4 come back.
    let r = book.apply(&call("a", T0, 10, 0, 100), T0);
    assert_eq!((r.granted, r.available), (0, 10));
    assert_eq!(book.periods[&T0].leases["a"], 0);
}

#[test]
fn a_dropped_or_ended_period_is_never_opened_again() {
    let mut book = Book::default();
    assert_eq!(book.apply(&call("a", T0, 5, 5, 0), T0).granted, 3);
    book.apply(&call("a", T0 + WINDOW, 5, 1, 0), T0 + WINDOW);
    book.apply(&call("a", T0 + 2 * WINDOW, 5, 1, 0), T0 + 2 * WINDOW);
    assert_eq!(book.periods.len(), MAX_PERIODS);
    // T0's period was dropped: asking for it again gets nothing.
    let r = book.apply(&call("b", T0, 5, 5, 0), T0 + 2 * WINDOW);
    assert_eq!((r.granted, r.available), (0, 0));
    // A period past its end and grace gets nothing, even on a fresh book.
    let mut fresh = Book::default();
    let late = T0 + WINDOW + PERIOD_GRACE_MS;
    assert_eq!(fresh.apply(&call("a", T0, 5, 5, 0), late).granted, 0);
    assert_eq!(fresh.expires_at_ms(), None);
    // Malformed periods get nothing.
    let mut bad = call("a", T0, 5, 5, 0);
    bad.end_ms = bad.start_ms;
    assert_eq!(fresh.apply(&bad, T0).granted, 0);
}

#[test]
fn a_lower_limit_takes_effect_at_once() {
    let mut book = Book::default();
    assert_eq!(book.apply(&call("a", T0, 100, 40, 0), T0).granted, 40);
    // The limit was lowered to 30 by a deploy: 40 are out, nothing is granted.
    let r = book.apply(&call("b", T0, 30, 10, 0), T0);
    assert_eq!((r.granted, r.available), (0, 0));
}

#[test]
fn the_book_survives_a_round_trip_through_storage() {
    let mut book = Book::default();
    book.apply(&call("a", T0, 50, 7, 0), T0);
    let text = serde_json::to_string(&book).unwrap();
    let mut back: Book = serde_json::from_str(&text).unwrap();
    assert_eq!(back, book);
    assert_eq!(back.apply(&call("b", T0, 50, 100, 0), T0).available, 21);
    assert_eq!(book.expires_at_ms(), Some(T0 + WINDOW + PERIOD_GRACE_MS));
}

// --- one isolate ---------------------------------------------------------------

#[test]
fn concurrent_requests_of_one_isolate_share_one_call() {
    let mut leases = Leases::new("iso".into());
    let mut book = Book::default();
    // Too little budget to lease ahead (see PLENTY_FACTOR): calls ask for the queue.
    let a = ask(30, T0);
    let mut tickets: Vec<Ticket> = (0..10).map(|_| Ticket::default()).collect();
    let first = match leases.acquire(&a, T0, &mut tickets[0]) {
        Acquire::Call(c) => c,
        other => panic!("{other:?}"),
    };
    for t in &mut tickets[1..] {
        assert_eq!(leases.acquire(&a, T0, t), Acquire::Wait);
        // Asking again while waiting does not count twice.
        assert_eq!(leases.acquire(&a, T0, t), Acquire::Wait);
    }
    // The call went out asking for 1; the reply arrives with nine queued behind it.
    assert_eq!(first.body.want, 1);
    let reply = book.apply(&first.body, T0);
    assert_eq!(reply.granted, 1);
    leases.on_reply(&first, Ok(reply), T0);
    assert!(admitted(match leases.acquire(&a, T0, &mut tickets[0]) {
        Acquire::Decided(v) => v,
        other => panic!("{other:?}"),
    }));
    // The next asker asks for the whole queue in one call.
    let second = match leases.acquire(&a, T0, &mut tickets[1]) {
        Acquire::Call(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(second.body.want, 9);
    let reply = book.apply(&second.body, T0);
    assert_eq!(reply.granted, 9);
    leases.on_reply(&second, Ok(reply), T0);
    for t in &mut tickets[1..] {
        assert!(matches!(
            leases.acquire(&a, T0, t),
            Acquire::Decided(Verdict::Admit { .. })
        ));
    }
    assert_eq!(book.periods[&a.start_ms].used(), 10);
}

#[test]
fn a_small_limit_is_exact_and_the_rest_is_refused_without_calls() {
    let mut leases = Leases::new("iso".into());
    let mut book = Book::default();
    let a = ask(5, T0);
    let verdicts: Vec<Verdict> = (0..8)
        .map(|_| request(&mut leases, &mut book, &a, T0).0)
        .collect();
    assert_eq!(verdicts.iter().filter(|v| admitted(**v)).count(), 5);
    assert_eq!(verdicts[5..], [Verdict::Deny; 3]);
    // Exhausted: refused locally, no call, until the recheck.
    assert_eq!(
        request(&mut leases, &mut book, &a, T0 + 10),
        (Verdict::Deny, 0)
    );
    let (v, calls) = request(&mut leases, &mut book, &a, T0 + RECHECK_EXHAUSTED_MS);
    assert_eq!((v, calls), (Verdict::Deny, 1));
}

#[test]
fn a_high_limit_costs_about_one_call_per_lease_horizon() {
    let mut leases = Leases::new("iso".into());
    let mut book = Book::default();
    let mut calls = 0;
    let mut admitted_n = 0;
    // 1,000 requests a second for 10 s, limit 1,000,000 per minute.
    for i in 0..10_000u64 {
        let now = T0 + i;
        let (v, c) = request(&mut leases, &mut book, &ask(1_000_000, now), now);
        calls += c;
        admitted_n += u64::from(admitted(v));
        for background in leases.take_due(now).calls {
            calls += 1;
            let reply = book.apply(&background.body, now);
            leases.on_reply(&background, Ok(reply), now);
        }
    }
    assert_eq!(admitted_n, 10_000);
    // The first second ramps up; then about one call a second.
    assert!(calls <= 40, "{calls} calls for 10,000 requests");
    // Idle: the lease goes back after IDLE_RETURN_MS.
    let later = T0 + 10_000 + IDLE_RETURN_MS;
    let held = leases.held("rl:api:abc:60");
    assert!(held > 0);
    let due = leases.take_due(later);
    assert_eq!(due.calls.len(), 1);
    assert_eq!(due.calls[0].body.give_back, held);
    let reply = book.apply(&due.calls[0].body, later);
    leases.on_reply(&due.calls[0], Ok(reply), later);
    assert_eq!(book.periods[&ask(1, T0).start_ms].used(), 10_000);
    assert_eq!(leases.held("rl:api:abc:60"), 0);
}

#[test]
fn an_idle_lease_is_given_back_later_and_one_caller_sleeps_for_it() {
    let mut leases = Leases::new("iso".into());
    let mut book = Book::default();
    // Prefetch needs a recent rate and plenty left: 200 requests in 200 ms.
    for i in 0..200 {
        let now = T0 + i;
        request(&mut leases, &mut book, &ask(100_000, now), now);
        for c in leases.take_due(now).calls {
            let r = book.apply(&c.body, now);
            leases.on_reply(&c, Ok(r), now);
        }
    }
    assert!(leases.held("rl:api:abc:60") > 0);
    // The return is due IDLE_RETURN_MS after the last request, not before.
    let at = T0 + 199 + IDLE_RETURN_MS;
    assert!(leases.take_due(at - 1).calls.is_empty());
    let due = leases.take_due(at);
    assert_eq!(due.calls.len(), 1);
    assert_eq!(due.calls[0].body.want, 0);
    assert!(due.calls[0].body.give_back > 0);
    assert_eq!(leases.held("rl:api:abc:60"), 0);
}

#[test]
fn only_one_background_caller_is_told_to_come_back() {
    let mut leases = Leases::new("iso".into());
    let mut book = Book::default();
    for i in 0..200 {
        let now = T0 + i;
        request(&mut leases, &mut book, &ask(100_000, now), now);
        for c in leases.take_due(now).calls {
            let r = book.apply(&c.body, now);
            leases.on_reply(&c, Ok(r), now);
        }
    }
    // Whoever was told during the burst still holds the duty; once it is
    // past, the next caller takes it over.
    let at = T0 + 199 + IDLE_RETURN_MS;
    assert_eq!(leases.take_due(T0 + 300).next_at_ms, None);
    let _ = at;
}

#[test]
fn window_roll_over_drops_the_old_lease() {
    let mut leases = Leases::new("iso".into());
    let mut book = Book::default();
    for i in 0..500 {
        let now = T0 + i;
        request(&mut leases, &mut book, &ask(1_000_000, now), now);
        for c in leases.take_due(now).calls {
            let r = book.apply(&c.body, now);
            leases.on_reply(&c, Ok(r), now);
        }
    }
    assert!(leases.held("rl:api:abc:60") > 0);
    let next = (T0 / WINDOW + 1) * WINDOW;
    let (v, calls) = request(&mut leases, &mut book, &ask(1_000_000, next), next);
    assert!(admitted(v));
    assert_eq!(calls, 1, "the old lease is never spent in the new window");
    assert_eq!(book.periods[&next].used(), 1);
}

#[test]
fn an_unreachable_limiter_is_reported_and_retried_once_a_second() {
    let mut leases = Leases::new("iso".into());
    let a = ask(50, T0);
    let mut t1 = Ticket::default();
    let mut t2 = Ticket::default();
    let c = match leases.acquire(&a, T0, &mut t1) {
        Acquire::Call(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(leases.acquire(&a, T0, &mut t2), Acquire::Wait);
    leases.on_reply(&c, Err(()), T0 + 5);
    assert_eq!(
        leases.acquire(&a, T0 + 5, &mut t1),
        Acquire::Decided(Verdict::Unreachable)
    );
    assert_eq!(
        leases.acquire(&a, T0 + 5, &mut t2),
        Acquire::Decided(Verdict::Unreachable)
    );
    let mut t3 = Ticket::default();
    assert_eq!(
        leases.acquire(&a, T0 + 500, &mut t3),
        Acquire::Decided(Verdict::Unreachable)
    );
    let mut t4 = Ticket::default();
    assert!(matches!(
        leases.acquire(&a, T0 + 5 + RETRY_AFTER_ERROR_MS, &mut t4),
        Acquire::Call(_)
    ));
}

#[test]
fn a_call_that_never_answers_times_out_and_its_late_grant_is_never_spent() {
    let mut leases = Leases::new("iso".into());
    let mut book = Book::default();
    let a = ask(50, T0);
    let mut t1 = Ticket::default();
    let c = match leases.acquire(&a, T0, &mut t1) {
        Acquire::Call(c) => c,
        other => panic!("{other:?}"),
    };
    let mut t2 = Ticket::default();
    assert_eq!(leases.acquire(&a, T0 + 10, &mut t2), Acquire::Wait);
    let late = T0 + CALL_TIMEOUT_MS;
    assert_eq!(
        leases.acquire(&a, late, &mut t2),
        Acquire::Decided(Verdict::Unreachable)
    );
    // The object did grant; the reply comes too late and is ignored.
    let reply = book.apply(&c.body, T0 + 1);
    assert_eq!(reply.granted, 1);
    leases.on_reply(&c, Ok(reply), late + 1);
    assert_eq!(leases.held(a.counter), 0);
}

// --- several isolates -----------------------------------------------------------

#[test]
fn two_isolates_with_queues_admit_exactly_the_limit() {
    // Two isolates, 150 requests queued in each, limit 50: calls alternate.
    let mut book = Book::default();
    let mut isolates = [Leases::new("a".into()), Leases::new("b".into())];
    let a = ask(50, T0);
    let mut tickets: Vec<Vec<Ticket>> = (0..2)
        .map(|_| (0..150).map(|_| Ticket::default()).collect())
        .collect();
    let mut decided: Vec<Vec<Option<Verdict>>> = vec![vec![None; 150]; 2];
    let mut in_flight: VecDeque<(usize, Call)> = VecDeque::new();
    for _round in 0..10_000 {
        let mut progress = false;
        for iso in 0..2 {
            for r in 0..150 {
                if decided[iso][r].is_some() {
                    continue;
                }
                match isolates[iso].acquire(&a, T0, &mut tickets[iso][r]) {
                    Acquire::Decided(v) => {
                        decided[iso][r] = Some(v);
                        progress = true;
                    }
                    Acquire::Call(c) => {
                        in_flight.push_back((iso, c));
                        progress = true;
                    }
                    Acquire::Wait => {}
                }
            }
        }
        if let Some((iso, c)) = in_flight.pop_front() {
            let reply = book.apply(&c.body, T0);
            isolates[iso].on_reply(&c, Ok(reply), T0);
            progress = true;
        }
        if !progress {
            break;
        }
    }
    let all: Vec<Verdict> = decided
        .iter()
        .flatten()
        .map(|v| v.expect("decided"))
        .collect();
    assert_eq!(all.iter().filter(|v| admitted(**v)).count(), 50);
    assert_eq!(all.iter().filter(|v| **v == Verdict::Deny).count(), 250);
    assert_eq!(isolates[0].held(a.counter) + isolates[1].held(a.counter), 0);
}

#[test]
fn a_dead_isolate_loses_its_lease_for_that_window_only() {
    let mut book = Book::default();
    let mut dying = Leases::new("dying".into());
    // The dying isolate was busy: it holds a prefetched lease when it dies.
    for i in 0..300 {
        let now = T0 + i;
        request(&mut dying, &mut book, &ask(1_000, now), now);
        for c in dying.take_due(now).calls {
            let r = book.apply(&c.body, now);
            dying.on_reply(&c, Ok(r), now);
        }
    }
    let held = dying.held("rl:api:abc:60");
    assert!(held > 0, "it holds a lease");
    drop(dying);
    let mut other = Leases::new("other".into());
    let now = T0 + 400;
    let n = (0..2_000)
        .filter(|_| admitted(request(&mut other, &mut book, &ask(1_000, now), now).0))
        .count() as u64;
    assert_eq!(n, 1_000 - 300 - held, "the lost lease is never admitted");
    // The next window has the whole budget again.
    let next = (T0 / WINDOW + 1) * WINDOW;
    let n = (0..2_000)
        .filter(|_| admitted(request(&mut other, &mut book, &ask(1_000, next), next).0))
        .count();
    assert_eq!(n, 1_000);
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An isolate slot and its generation (messages of a dead isolate are dropped).
type Sender = (usize, u64);

#[test]
fn never_more_than_the_limit_over_random_interleavings() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let limit = [1, 2, 7, 50, 300][rng.below(5) as usize];
        let window = [1_000u64, 5_000, 60_000][rng.below(3) as usize];
        let n_isolates = 1 + rng.below(5) as usize;
        let mut book = Book::default();
        let mut isolates: Vec<Option<Leases>> = (0..n_isolates)
            .map(|i| Some(Leases::new(format!("i{i}"))))
            .collect();
        // Messages of a dead isolate never reach its successor.
        let mut generation = vec![0u64; n_isolates];
        // Requests in progress: (isolate, ticket).
        let mut pending: Vec<(usize, Ticket)> = Vec::new();
        // Calls on the way to the object, and replies on the way back.
        let mut to_object: Vec<(Sender, Call)> = Vec::new();
        let mut to_isolate: Vec<(Sender, Call, Result<LeaseReply, ()>)> = Vec::new();
        let mut admitted_in: BTreeMap<u64, u64> = BTreeMap::new();
        let mut now = T0 + rng.below(window);
        for _step in 0..3_000 {
            let counter = "c";
            let start = now / window * window;
            let a = Ask {
                counter,
                start_ms: start,
                end_ms: start + window,
                limit,
            };
            match rng.below(10) {
                0..=2 => {
                    let iso = rng.below(n_isolates as u64) as usize;
                    pending.push((iso, Ticket::default()));
                }
                3 | 4 if !pending.is_empty() => {
                    let i = rng.below(pending.len() as u64) as usize;
                    let iso = pending[i].0;
                    let Some(leases) = isolates[iso].as_mut() else {
                        pending.swap_remove(i);
                        continue;
                    };
                    match leases.acquire(&a, now, &mut pending[i].1) {
                        Acquire::Decided(v) => {
                            if admitted(v) {
                                *admitted_in.entry(start).or_default() += 1;
                            }
                            pending.swap_remove(i);
                        }
                        Acquire::Call(c) => to_object.push(((iso, generation[iso]), c)),
                        Acquire::Wait => {}
                    }
                }
                5 if !to_object.is_empty() => {
                    let i = rng.below(to_object.len() as u64) as usize;
                    let (iso, c) = to_object.swap_remove(i);
                    // Some calls are lost on the way; some replies too.
                    if rng.below(10) > 0 {
                        let reply = book.apply(&c.body, now);
                        let result = if rng.below(10) > 0 {
                            Ok(reply)
                        } else {
                            Err(())
                        };
                        to_isolate.push((iso, c, result));
                    }
                }
                6 if !to_isolate.is_empty() => {
                    let i = rng.below(to_isolate.len() as u64) as usize;
                    let ((iso, gen), c, result) = to_isolate.swap_remove(i);
                    if gen == generation[iso] {
                        if let Some(leases) = isolates[iso].as_mut() {
                            leases.on_reply(&c, result, now);
                        }
                    }
                }
                7 => {
                    let iso = rng.below(n_isolates as u64) as usize;
                    if let Some(leases) = isolates[iso].as_mut() {
                        for c in leases.take_due(now).calls {
                            to_object.push(((iso, generation[iso]), c));
                        }
                    }
                }
                8 => now += rng.below(window / 4),
                _ => {
                    // An isolate dies (with whatever it holds) and a new one starts.
                    if rng.below(20) == 0 {
                        let iso = rng.below(n_isolates as u64) as usize;
                        isolates[iso] = Some(Leases::new(format!("i{iso}-{now}")));
                        generation[iso] += 1;
                        pending.retain(|(i, _)| *i != iso);
                    }
                }
            }
            for (&start, &n) in &admitted_in {
                assert!(
                    n <= limit,
                    "seed {seed}: {n} admitted in the period at {start} with a limit of {limit}"
                );
            }
            for (start, p) in &book.periods {
                assert!(
                    p.used() <= limit,
                    "seed {seed}: period {start} used {}",
                    p.used()
                );
            }
        }
    }
}
