//! Benchmarks of the `xsm` security server side by side with libsepol 3.4
//! (tools/sepol-oracle), same policies, same query streams, one run:
//!
//! * policy load: `PolicyDb::from_bytes` vs libsepol `policydb_read` (in memory, + destroy);
//! * cache miss: `services::compute_av` vs `sepol_compute_av` (on SIDs);
//! * AVC hit: `Flask::check` / `Flask::has_perm` on a warm cache, one thread, and two
//!   threads checking the same entries at once (Warden only: libsepol has no AVC).
//!
//! Policies: tests/policies/base.te (small) and a generated large policy
//! (thousands of types, ~100k rules) compiled by checkpolicy.
//! Run: `cargo bench -p xsm --bench flask` (results go in BENCHMARKS.md).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use sepol_oracle::Oracle;
use xsm::policydb::PolicyDb;
use xsm::services::{self, CondState};
use xsm::{AuditData, ClassId, Flask, Sid, perms};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const NTYPES: usize = 3000;
const NATTRS: usize = 60;

fn large_conf() -> String {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut b = String::new();
    for a in 0..NATTRS {
        b += &format!("attribute a{a};\n");
    }
    for t in 0..NTYPES {
        b += &format!(
            "type ty{t}_t, a{}, a{};\n",
            r.below(NATTRS),
            r.below(NATTRS)
        );
    }
    for i in 0..4 {
        b += &format!("bool b{i} {};\n", i % 2 == 0);
    }
    let name = |r: &mut Rng| {
        if r.below(50) == 0 {
            format!("a{}", r.below(NATTRS))
        } else {
            format!("ty{}_t", r.below(NTYPES))
        }
    };
    let class_perms = |r: &mut Rng| {
        let c = r.below(xsm::NUM_CLASSES);
        let names = xsm::PERM_NAMES[c];
        let k = 1 + r.below(4);
        let ps: Vec<&str> = (0..k).map(|_| names[r.below(names.len())]).collect();
        (xsm::CLASS_NAMES[c], ps.join(" "))
    };
    for _ in 0..100_000 {
        let (s, t) = (name(&mut r), name(&mut r));
        let (c, p) = class_perms(&mut r);
        b += &format!("allow {s} {t}:{c} {{ {p} }};\n");
    }
    for kw in ["auditallow", "dontaudit"] {
        for _ in 0..2000 {
            let (s, t) = (name(&mut r), name(&mut r));
            let (c, p) = class_perms(&mut r);
            b += &format!("{kw} {s} {t}:{c} {{ {p} }};\n");
        }
    }
    for i in 0..1000 {
        let (c, p) = class_perms(&mut r);
        b += &format!(
            "if (b{}) {{ allow ty{}_t ty{}_t:{c} {{ {p} }}; }}\n",
            i % 4,
            r.below(NTYPES),
            r.below(NTYPES)
        );
    }
    for _ in 0..1000 {
        b += &format!(
            "type_transition ty{}_t ty{}_t:event ty{}_t;\n",
            r.below(NTYPES),
            r.below(NTYPES),
            r.below(NTYPES)
        );
    }
    b += "role system_r;\n";
    for a in 0..NATTRS {
        b += &format!("role system_r types a{a};\n");
    }
    b += "user system_u roles { system_r };\n";
    for s in xsm::INITIAL_SID_NAMES {
        b += &format!("sid {s} system_u:system_r:ty0_t\n");
    }
    let flask = common::manifest().join("../policies/flask");
    let mut s = String::new();
    for f in ["security_classes", "initial_sids", "access_vectors"] {
        s += &std::fs::read_to_string(flask.join(f)).unwrap();
    }
    s + &b
}

/// One pass of AVC checks on CPU slot `cpu` (not inlined, so that
/// `valgrind --tool=callgrind` can count its instructions per check).
#[inline(never)]
fn avc_hits(f: &Flask, cpu: usize, set: &[(Sid, Sid, ClassId, u32)], ad: &AuditData) {
    for &(s, t, c, p) in set {
        let _ = black_box(f.check(cpu, black_box(s), black_box(t), c, p, ad));
    }
}

/// One policy load and drop (not inlined: callgrind counts it per call).
#[inline(never)]
fn xsm_load(img: &[u8]) {
    drop(black_box(PolicyDb::from_bytes(black_box(img)).unwrap()));
}

/// libsepol's load: policydb_init + policydb_read (in memory) + policydb_destroy.
#[inline(never)]
fn sepol_load(img: &[u8]) {
    sepol_oracle::read_policy_mem(black_box(img)).unwrap();
}

/// Median of `runs` timings of `f`, in nanoseconds per iteration.
fn bench(runs: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[runs / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run quickly then.
    let quick = !std::env::args().any(|a| a == "--bench");
    // Optional filters: `cargo bench -p xsm --bench flask -- [load|miss|hit]... [small|large]`.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let kinds = ["load", "miss", "hit"];
    let want = |what: &str| {
        !only.iter().any(|o| kinds.contains(&o.as_str())) || only.iter().any(|o| o == what)
    };
    let small = common::build("base30");
    let t = Instant::now();
    let large = common::compile("large", &large_conf(), 30, false);
    eprintln!(
        "large policy compiled by checkpolicy in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!("| policy | measure | Warden xsm | libsepol 3.4 | ratio (libsepol / xsm) |");
    println!("|---|---|---|---|---|");
    for (pname, path) in [
        ("small (tests/policies/base.te)", &small),
        ("large (generated)", &large),
    ] {
        let size = if pname.starts_with("small") {
            "small"
        } else {
            "large"
        };
        if only.iter().any(|o| o == "small" || o == "large") && !only.iter().any(|o| o == size) {
            continue;
        }
        let img = common::read(path);
        let db = PolicyDb::from_bytes(&img).unwrap();
        if pname.starts_with("large") {
            eprintln!(
                "large: {} types, {} attributes, {} rules + {} conditional, {} KiB",
                db.types.len() - db.attribute_count(),
                db.attribute_count(),
                db.rule_count(),
                db.cond_rule_count(),
                img.len() / 1024
            );
        }
        let (runs, iters) = if quick {
            (1, 1)
        } else if pname.starts_with("large") {
            (7, 5)
        } else {
            (7, 2000)
        };
        if want("load") {
            let ours = bench(runs, iters, || xsm_load(&img));
            let theirs = bench(runs, iters, || sepol_load(&img));
            println!(
                "| {pname} | policy load (µs) | {:.1} | {:.1} | {:.2}x |",
                ours / 1e3,
                theirs / 1e3,
                theirs / ours
            );
        }
        if !want("miss") && !want("hit") {
            continue;
        }

        // Query stream: random (s, t, class) over the policy's types.
        let oracle = Oracle::load(path, &[]).unwrap();
        let cs = CondState::new(&db);
        let types: Vec<&str> = db
            .types
            .iter()
            .filter(|t| !t.attribute)
            .map(|t| &*t.name)
            .collect();
        let role = "system_r";
        let ctxs: Vec<String> = types
            .iter()
            .map(|t| format!("system_u:{role}:{t}"))
            .filter(|c| services::parse_context(&db, c.as_bytes()).is_ok())
            .collect();
        let parsed: Vec<_> = ctxs
            .iter()
            .map(|c| services::parse_context(&db, c.as_bytes()).unwrap())
            .collect();
        let sids: Vec<u32> = ctxs.iter().map(|c| oracle.sid(c).unwrap()).collect();
        let mut r = Rng(42);
        let q: Vec<(usize, usize, u16)> = (0..20_000)
            .map(|_| {
                (
                    r.below(ctxs.len()),
                    r.below(ctxs.len()),
                    1 + r.below(xsm::NUM_CLASSES) as u16,
                )
            })
            .collect();
        for &(s, t, c) in &q[..2000] {
            if db.types[parsed[t].ty as usize - 1].bounds != 0 {
                continue; // documented Xen-vs-libsepol difference (target bounds)
            }
            let a = services::compute_av(&db, &cs, &parsed[s], &parsed[t], u32::from(c)).allowed;
            let b = oracle.compute_av_sid(sids[s], sids[t], c).unwrap();
            assert_eq!(a, b, "decisions differ: {} {} {c}", ctxs[s], ctxs[t]);
        }
        let qi = if quick { 10 } else { q.len() };
        let ours = bench(runs.max(3), 1, || {
            for &(s, t, c) in &q[..qi] {
                black_box(services::compute_av(
                    &db,
                    &cs,
                    &parsed[s],
                    &parsed[t],
                    u32::from(c),
                ));
            }
        }) / qi as f64;
        let theirs = bench(runs.max(3), 1, || {
            for &(s, t, c) in &q[..qi] {
                black_box(oracle.compute_av_sid(sids[s], sids[t], c).unwrap());
            }
        }) / qi as f64;
        println!(
            "| {pname} | compute_av, cache miss (ns) | {ours:.0} | {theirs:.0} | {:.2}x |",
            theirs / ours
        );
        drop(oracle);

        // AVC hit: a warm working set of 256 (ssid, tsid) pairs, class domain.
        let f = Flask::new(true, None);
        f.load_policy(&img).unwrap();
        let fs: Vec<Sid> = ctxs
            .iter()
            .take(64)
            .map(|c| f.context_to_sid(c.as_bytes()).unwrap())
            .collect();
        // The hot path of a running system: checks that are granted. Pick
        // (ssid, tsid, class, permission) triples the policy allows.
        let mut granted: Vec<(Sid, Sid, ClassId, u32)> = Vec::new();
        let mut denied: Vec<(Sid, Sid, ClassId, u32)> = Vec::new();
        'outer: for &s in &fs {
            for &t in &fs {
                for c in 1..=xsm::NUM_CLASSES as u32 {
                    let class = ClassId::from_raw(c).unwrap();
                    let d = f.compute_av_effective(s, t, class).unwrap();
                    let all = (1u32 << class.perm_names().len()) - 1;
                    if d.allowed & all != 0 {
                        granted.push((s, t, class, 1 << (d.allowed & all).trailing_zeros()));
                    } else if denied.len() < 256 {
                        denied.push((s, t, class, 1));
                    }
                    if granted.len() >= 256 {
                        break 'outer;
                    }
                }
            }
        }
        let granted: Vec<_> = (0..256).map(|i| granted[i % granted.len()]).collect();
        let ad = AuditData::default();
        for set in [&granted, &denied] {
            for &(s, t, c, p) in set.iter() {
                let _ = f.check(0, s, t, c, p, &ad);
            }
        }
        let n = if quick { 1 } else { 40_000 };
        let hit = bench(runs.max(3), n, || avc_hits(&f, 0, &granted, &ad)) / granted.len() as f64;
        println!("| {pname} | AVC hit, granted, 1 thread (ns/decision) | {hit:.1} | (no AVC) | |");
        // Two threads (CPU slots 0 and 1) checking the same entries at once:
        // the median over both threads' runs.
        let barrier = std::sync::Barrier::new(2);
        let per_thread: Vec<Vec<f64>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2usize)
                .map(|cpu| {
                    let (f, granted, ad, barrier) = (&f, &granted, &ad, &barrier);
                    sc.spawn(move || {
                        (0..runs.max(3))
                            .map(|_| {
                                barrier.wait();
                                bench(1, n, || avc_hits(f, cpu, granted, ad)) / granted.len() as f64
                            })
                            .collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<f64> = per_thread.concat();
        all.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let hit2 = all[all.len() / 2];
        println!(
            "| {pname} | AVC hit, granted, 2 threads on the same entries (ns/decision, median) | {hit2:.1} | (no AVC) | |"
        );
        let typed = bench(runs.max(3), n, || {
            for &(s, t, _, _) in &granted {
                let _ =
                    black_box(f.has_perm(0, black_box(s), black_box(t), perms::domain::PAUSE, &ad));
            }
        }) / granted.len() as f64;
        println!(
            "| {pname} | AVC hit, typed has_perm (mixed outcome, ns/decision) | {typed:.1} | (no AVC) | |"
        );
        let st = f.cache_stats(0).unwrap();
        assert!(st.hits > st.misses);
    }
}
