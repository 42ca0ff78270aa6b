//! Issue 5: domains and vCPUs — lifecycle and memory, crash isolation,
//! scheduling (a CPU burner does not starve another guest; more vCPUs than
//! CPUs), the virtual timer and the event upcall, and the hostile guest.

use warden_tests::Boot;

const DOMU: &str = "user_1:vm_r:domU_t";

#[test]
fn lifecycle_pause_destroy_and_every_page_returned() {
    let o = Boot::new()
        .guest("role=lifecycle-dom0 victim=1 poweroff=2")
        .guest(&format!(
            "domain domid=1 label={DOMU} mem=8M -- role=victim"
        ))
        .guest(&format!("domain domid=2 label={DOMU} mem=8M -- role=hello"))
        // A kernel for dom0 to build a domain from, as libxc does.
        .module(warden_tests::tguest(), "kernel")
        .run();
    o.expect_dom0_poweroff()
        .contains("RESULT lifecycle-dom0: PASS")
        // The xl create flow: the built domain ran its checks.
        .contains("ran its checks and powered off")
        .contains("RESULT built: PASS")
        .contains("CHECK ok physinfo free pages back to")
        .lacks("CHECK FAIL")
        .contains("Domain 2 shut down: reason 0 (poweroff)")
        // 8 MiB of RAM, the three ACPI pages of the PVH layout and the
        // console ring Warden serves.
        .contains("Domain 1 destroyed: 2052 pages scrubbed and freed");
    o.line_with_all(&[
        "Domain 3 destroyed: 1533 pages scrubbed and freed",
        "page-table frames freed",
    ]);
}

#[test]
fn a_faulting_guest_is_crashed_alone_and_the_others_go_on() {
    let o = Boot::new()
        .guest("role=wait-dom0 crash=1,2 selfcrash=3,4 alive=5")
        .guest(&format!(
            "domain domid=1 label={DOMU} -- role=crash kind=npf"
        ))
        .guest(&format!(
            "domain domid=2 label={DOMU} -- role=crash kind=triple"
        ))
        .guest(&format!(
            "domain domid=3 label={DOMU} -- role=crash kind=io"
        ))
        .guest(&format!(
            "domain domid=4 label={DOMU} -- role=crash kind=ud"
        ))
        .guest(&format!("domain domid=5 label={DOMU} -- role=canary"))
        .run();
    o.expect_dom0_poweroff()
        .contains("RESULT wait-dom0: PASS")
        .lacks("CHECK FAIL")
        .lacks("still running after")
        .contains("d1v0: crashed: access to guest-physical 0x40000000 outside its memory (nested page fault")
        .contains("d2v0: crashed: triple fault (shutdown intercept)")
        .guest_says(3, "io: unclaimed port 0x80 reads 0xff after a write")
        .guest_says(3, "guest exception 6 (error 0x0)")
        .guest_says(4, "guest exception 6 (error 0x0)")
        .contains("canary: tick");
    // The crash reports include the guest's registers.
    o.line_with_all(&["d1v0:   RIP 0x", "RSP 0x"]);
    for d in 1..=4 {
        o.contains(&format!("Domain {d} shut down: reason 3 (crash)"));
    }
}

#[test]
fn a_cpu_burner_does_not_starve_another_guest_on_one_cpu() {
    let o = Boot::new()
        .smp(1)
        .guest("role=sched-dom0 burner=1 worker=2")
        .guest(&format!("domain domid=1 label={DOMU} -- role=burner"))
        .guest(&format!(
            "domain domid=2 label={DOMU} -- role=worker seconds=2 min=35"
        ))
        .run();
    o.expect_dom0_poweroff()
        .contains("RESULT sched-dom0: PASS")
        .guest_says(2, "RESULT worker: PASS")
        .lacks("CHECK FAIL");
}

#[test]
fn weights_share_the_cpu_in_proportion() {
    let o = Boot::new()
        .smp(1)
        .guest("role=sched-dom0 burner=1 worker=2")
        .guest(&format!(
            "domain domid=1 label={DOMU} weight=128 -- role=burner"
        ))
        .guest(&format!(
            "domain domid=2 label={DOMU} weight=384 -- role=worker seconds=2 min=60"
        ))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(2, "RESULT worker: PASS")
        .lacks("CHECK FAIL");
}

#[test]
fn a_guest_with_more_vcpus_than_cpus_runs() {
    let o = Boot::new()
        .smp(2)
        .guest("role=wait-dom0 ok=1")
        .guest(&format!("domain domid=1 label={DOMU} vcpus=5 -- role=smp"))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT smp: PASS")
        .guest_says(1, "CHECK ok vCPU 4 of 5 ran")
        .lacks("CHECK FAIL");
}

#[test]
fn singleshot_timer_wakes_a_blocked_vcpu_through_the_event_upcall() {
    let o = Boot::new()
        .guest("role=wait-dom0 ok=1")
        .guest(&format!("domain domid=1 label={DOMU} -- role=timer"))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT timer: PASS")
        .lacks("CHECK FAIL");
}

#[test]
fn hostile_guest_random_hypercalls_change_nothing_outside_its_policy() {
    let o = Boot::new()
        .long()
        .memory(768)
        .guest("role=hostile-dom0 hostile=1 canary=2 victim=3")
        .guest(&format!(
            "domain domid=1 label={DOMU} mem=16M -- role=hostile iterations=100000 seed=20260"
        ))
        .guest(&format!("domain domid=2 label={DOMU} -- role=canary"))
        .guest(&format!(
            "domain domid=3 label={DOMU} mem=8M -- role=victim"
        ))
        .timeout(std::time::Duration::from_secs(900))
        .run();
    o.expect_dom0_poweroff()
        .contains("RESULT hostile-dom0: PASS")
        .guest_says(1, "RESULT hostile: PASS")
        .guest_says(1, "hostile: 100000 calls made")
        .lacks("CHECK FAIL")
        .lacks("VIOLATION")
        .lacks("Warden fatal")
        .lacks("Warden panic")
        // The flood of denials is rate limited, and says so.
        .contains("audit messages suppressed");
    for l in o.lines_with("hostile: 100000 calls made (") {
        eprintln!("{l}");
    }
    // Every success is an operation domU_t may do on itself.
    for l in o.lines_with("HOSTILE success hypercall") {
        let w: Vec<&str> = l.split_whitespace().collect();
        let i = w.iter().position(|x| *x == "hypercall").unwrap();
        let (h, s): (u32, u64) = (
            w[i + 1].parse().unwrap(),
            w[i + 3].trim_end_matches(':').parse().unwrap(),
        );
        let ok = matches!(
            (h, s),
            (18, 0)
                // xen_version: a refused string answers "<denied>" (rc 0).
                | (17, 0..=9)
                | (15, _)
                | (29, 0)
                | (24, 2..=9 | 13)
                | (34, 23)
                | (32, 0..=13)
                // memory_op: ... and the sharing counters (18, 19: 0,
                // Xen without memory sharing answers any domain).
                | (12, 2..=6 | 9 | 18 | 19)
                // multicall: a list it could read (each entry is checked
                // as its own hypercall).
                | (13, 0)
                | (35, 6)
                | (27, 24)
                // grant_table_op: per-entry refusals are statuses (rc 0);
                // query_size, set_version(1), get_version on itself.
                | (20, 0 | 1 | 6 | 8 | 10)
        );
        assert!(ok, "hostile success outside domU_t's permissions: {l}");
    }
}

#[test]
fn a_pvh_guest_sees_xens_cpu_interface() {
    let o = Boot::new()
        .guest("role=wait-dom0 ok=1")
        .guest(&format!("domain domid=1 label={DOMU} -- role=pvh-cpu"))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT pvh-cpu: PASS")
        .guest_says(1, "e9: hello through port 0xE9")
        .contains("hvm_start_info at")
        .lacks("CHECK FAIL");
}
