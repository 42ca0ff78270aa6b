//! The generated Xen-style benchmark policy (examples/gen-bench-policy.rs) means the
//! same to both compilers: in full at a small size, and sampled at the benchmark's
//! size (2,000 guest domain types) with seinfo's statistics compared in full.

mod common;

#[path = "../examples/gen-bench-policy.rs"]
mod gen_bench_policy;

use common::*;

#[test]
fn small_generated_policy_has_zero_decision_differences() {
    need_tools();
    let dir = scratch("gen-small");
    gen_bench_policy::generate(&dir, 12).unwrap();
    let d = differential("gen-small", &[dir.join("bench.m4")], &[], true);
    assert!(d.is_empty(), "{}", d.join("\n"));
}

#[test]
fn benchmark_sized_policy_has_zero_sampled_decision_differences() {
    need_tools();
    let dir = scratch("gen-2000");
    gen_bench_policy::generate(&dir, 2000).unwrap();
    // every 97th guest plus the service domains and hypervisor types
    let keep = |t: &str| {
        let n: Option<usize> = t
            .strip_prefix('g')
            .and_then(|r| r.split('_').next())
            .and_then(|x| x.parse().ok());
        match n {
            Some(i) => i % 97 == 0 || i % 97 == 1,
            None => true,
        }
    };
    let d = differential_with("gen-2000", &[dir.join("bench.m4")], &[], true, Some(&keep));
    assert!(d.is_empty(), "{}", d.join("\n"));
}
