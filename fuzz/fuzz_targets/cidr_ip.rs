//! The `ip` policy: CIDR lists as `config::load` reads them (`parse_cidr`, then
//! `IpPolicy::new`) and client addresses (`cf-connecting-ip`) through
//! `IpPolicy::admits`.
//!
//! Input: bytes 0..16 are host bits for generated addresses; then one item a line:
//! `+ENTRY` an allow entry, `-ENTRY` a deny entry, anything else a client address
//! as sent (IPv4, IPv6, IPv4-mapped IPv6, garbage).
//!
//! Checks (besides no panic):
//! - `parse_cidr` accepts an entry exactly when it is an address or a CIDR without
//!   host bits; what it accepts prints as a CIDR that parses back to itself; a
//!   refusal names the entry;
//! - `admits` agrees with a reference written here over `u128` bit masks: an
//!   address that does not parse (after trimming) passes exactly when `allow` is
//!   empty (ip/mod.rs: "refused by a non-empty allow, cannot be denied by a deny
//!   list alone"); an IPv4-mapped IPv6 address is its IPv4 address; an IPv4 address
//!   matches IPv6 entries in mapped form; a denied address never passes; an address
//!   outside a non-empty allow never passes;
//! - for every entry, addresses built inside it (its first and last address and one
//!   with the input's host bits, in plain, mapped, upper-case and padded spellings)
//!   are admitted exactly when the reference says, and inside an allow entry and
//!   outside every deny entry always pass;
//! - a rule with both lists empty compiles to no policy.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edge_gateway::config::parse_cidr;
use edge_gateway::config::IpRule;
use edge_gateway::policy::ip::IpPolicy;
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

/// A network as the reference sees it: 128 bits (IPv4 as `::ffff:a.b.c.d`) and a
/// prefix length over them; `v4` for entries written as IPv4.
#[derive(Debug, Clone, Copy)]
struct Net {
    bits: u128,
    prefix: u32,
    v4: bool,
}

const MAPPED: u128 = 0xffff_u128 << 32;

fn mask(prefix: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    }
}

impl Net {
    fn of(net: &IpNet) -> Net {
        match net {
            IpNet::V4(n) => Net {
                bits: MAPPED | u128::from(u32::from(n.addr())),
                prefix: 96 + u32::from(n.prefix_len()),
                v4: true,
            },
            IpNet::V6(n) => Net {
                bits: u128::from(n.addr()),
                prefix: u32::from(n.prefix_len()),
                v4: false,
            },
        }
    }

    /// The reference match: an IPv4 entry holds only IPv4 clients (after unmapping);
    /// an IPv6 entry holds IPv6 clients and IPv4 clients in their mapped form.
    fn holds(&self, client: u128) -> bool {
        let client_v4 = client & !0xffff_ffff == MAPPED;
        if self.v4 && !client_v4 {
            return false;
        }
        (self.bits ^ client) & mask(self.prefix) == 0
    }

    fn first(&self) -> u128 {
        self.bits & mask(self.prefix)
    }

    fn last(&self) -> u128 {
        self.bits | !mask(self.prefix)
    }

    fn with_host(&self, host: u128) -> u128 {
        self.first() | (host & !mask(self.prefix))
    }
}

/// The client address as the reference reads it: trimmed, parsed, IPv4 and
/// IPv4-mapped IPv6 as `::ffff:a.b.c.d`.
fn reference_addr(client: &str) -> Option<u128> {
    match client.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(MAPPED | u128::from(u32::from(a))),
        IpAddr::V6(a) => Some(u128::from(a)),
    }
}

fn reference_admits(allow: &[Net], deny: &[Net], client: &str) -> bool {
    let Some(addr) = reference_addr(client) else {
        return allow.is_empty();
    };
    !deny.iter().any(|n| n.holds(addr)) && (allow.is_empty() || allow.iter().any(|n| n.holds(addr)))
}

/// Spellings of one address as a client (or a proxy) may send it.
fn spellings(bits: u128) -> Vec<String> {
    let v6 = Ipv6Addr::from(bits);
    let mut out = vec![v6.to_string(), v6.to_string().to_ascii_uppercase()];
    let segs = v6.segments();
    out.push(
        segs.iter()
            .map(|s| format!("{s:04X}"))
            .collect::<Vec<_>>()
            .join(":"),
    );
    if bits & !0xffff_ffff == MAPPED {
        let v4 = Ipv4Addr::from(bits as u32);
        out.push(v4.to_string());
        out.push(format!(" {v4}\t"));
        out.push(format!("::ffff:{v4}"));
        out.push(format!("::FFFF:{v4}"));
        out.push(format!("0:0:0:0:0:ffff:{:x}:{:x}", segs[6], segs[7]));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let host = u128::from_le_bytes(data[..16].try_into().unwrap());
    let text = String::from_utf8_lossy(&data[16..]);
    let mut rule = IpRule::default();
    let mut clients: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if let Some(e) = line.strip_prefix('+') {
            rule.allow.push(e.to_string());
        } else if let Some(e) = line.strip_prefix('-') {
            rule.deny.push(e.to_string());
        } else {
            clients.push(line);
        }
    }
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    let mut valid = true;
    for (entries, nets) in [(&rule.allow, &mut allow), (&rule.deny, &mut deny)] {
        for entry in entries {
            match parse_cidr(entry) {
                Ok(net) => {
                    assert_eq!(net.trunc(), net, "{entry:?}: host bits kept");
                    let printed = net.to_string();
                    assert_eq!(
                        printed.parse::<IpNet>().ok(),
                        Some(net),
                        "{entry:?} prints as {printed:?}"
                    );
                    let plain = entry.parse::<IpAddr>().ok().map(IpNet::from);
                    let cidr = entry.parse::<IpNet>().ok();
                    assert!(plain == Some(net) || cidr == Some(net), "{entry:?}");
                    nets.push(Net::of(&net));
                }
                Err(e) => {
                    assert!(e.contains(&format!("\"{entry}\"")), "{e}");
                    let plain = entry.parse::<IpAddr>().is_ok();
                    let exact = entry.parse::<IpNet>().is_ok_and(|n| n.trunc() == n);
                    assert!(!plain && !exact, "{entry:?} refused: {e}");
                    valid = false;
                }
            }
        }
    }
    let compiled = IpPolicy::new(&rule);
    if !valid {
        assert!(compiled.is_err(), "an invalid entry compiled");
        return;
    }
    let policy = match compiled.expect("valid entries compile") {
        Some(p) => p,
        None => {
            assert!(rule.allow.is_empty() && rule.deny.is_empty());
            return;
        }
    };
    let check = |client: &str| {
        let got = policy.admits(Some(client));
        let want = reference_admits(&allow, &deny, client);
        assert_eq!(
            got, want,
            "admits({client:?}) with allow {:?} deny {:?}",
            rule.allow, rule.deny
        );
        got
    };
    assert_eq!(policy.admits(None), allow.is_empty(), "no client address");
    for client in &clients {
        check(client);
    }
    for (list, nets) in [("allow", &allow), ("deny", &deny)] {
        for net in nets.iter() {
            for bits in [net.first(), net.last(), net.with_host(host)] {
                for s in spellings(bits) {
                    let passed = check(&s);
                    let addr = reference_addr(&s).expect("a spelling parses");
                    let denied = deny.iter().any(|n| n.holds(addr));
                    if list == "deny" && net.holds(addr) {
                        assert!(!passed, "{s:?} inside deny entry {net:?} passed");
                    }
                    if list == "allow" && net.holds(addr) && !denied {
                        assert!(passed, "{s:?} inside allow entry {net:?} refused");
                    }
                }
            }
        }
    }
});
