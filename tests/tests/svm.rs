//! Issue 14: an ASID per vCPU (switching between vCPUs on a CPU flushes no
//! TLB) and the speculation controls, which are gated on CPUID: QEMU's
//! `qemu64,+svm,+npt` reports none, so a TCG run takes none of their steps.

use warden_tests::Boot;

/// The numbers of a `CPUn: E guest entries, F full TLB flushes, A
/// single-ASID flushes, K ASIDs assigned, I IBPBs` line.
fn cpu_stats(line: &str) -> [u64; 5] {
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    // The timestamp's two numbers and the CPU number come first.
    let n = nums.len();
    assert!(n >= 8, "not a per-CPU stats line: {line}");
    [
        nums[n - 5],
        nums[n - 4],
        nums[n - 3],
        nums[n - 2],
        nums[n - 1],
    ]
}

#[test]
fn two_guests_on_one_cpu_take_turns_without_tlb_flushes_and_tcg_takes_no_speculation_steps() {
    let o = Boot::new()
        .smp(1)
        .guest("role=bench count=20000 wait=1")
        .guest("domain domid=1 label=user_1:vm_r:domU_t -- role=bench count=20000")
        .run();
    o.expect_dom0_poweroff()
        .contains("BENCH d0 calls=20000 failed=0")
        .contains("BENCH d1 calls=20000 failed=0")
        .contains(
            "Speculation: IBPB between domains no, RSB fill on #VMEXIT no, guest SPEC_CTRL none (no SPEC_CTRL), AutoIBRS no; ASIDs per CPU 15 (flush by ASID no)",
        )
        .lacks("saved the host's state");
    let line = o
        .lines_with("guest entries")
        .into_iter()
        .find(|l| l.contains("CPU0: "))
        .expect("CPU0's stats line at power-off");
    let [entries, full, single, asids, ibpbs] = cpu_stats(line);
    // dom0 ran, then the domU while dom0 waited for it, then dom0 again to
    // power off: at least two switches between VMCBs on this CPU (each of
    // which used to flush the whole TLB), under at least two ASIDs.
    assert!(entries > 40_000, "{line}");
    assert!(asids >= 2, "{line}");
    assert_eq!(
        full, 1,
        "only the CPU's first entry flushes everything: {line}"
    );
    assert_eq!(single, 0, "{line}");
    assert_eq!(ibpbs, 0, "no IBPB where CPUID reports none: {line}");
}
