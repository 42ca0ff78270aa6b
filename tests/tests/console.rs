//! Issues 13 and 14: the console ring and guest console output — a forged
//! audit record stays a guest's line that audit2allow refuses, and a
//! flooding guest neither evicts audit records nor stops other domains.

use warden_tests::Boot;

const DOMU: &str = "user_1:vm_r:domU_t";

#[test]
fn a_flooding_guest_with_a_forged_record_evicts_no_audit_record_and_gets_no_rule() {
    let o = Boot::new()
        .guest("role=console-dom0 flooder=1 canary=2")
        .guest(&format!(
            "domain domid=1 label={DOMU} mem=16M -- role=flooder flood=16"
        ))
        .guest(&format!(
            "domain domid=2 label={DOMU} mem=8M -- role=canary"
        ))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(
            1,
            "[    1.000000] WARN  audit(1.000:99): avc:  denied  { load_policy }",
        )
        .guest_says(1, "flooder: done after 16 writes of 64 KiB")
        // The rate limit dropped most of the 4096 lines, and said so.
        .contains("line(s) dropped by guest_console_ratelimit")
        .guest_says(2, "canary: tick");
    // Flood lines that passed, with their times: at most the burst (200)
    // plus 200 per second of the flood's span (guest_console_ratelimit=200/1000).
    let times: Vec<f64> = o
        .serial
        .lines()
        .filter(|l| l.starts_with("(d1) [") && l.ends_with("xxxxxxxx"))
        .filter_map(|l| l[6..].split(']').next()?.trim().parse().ok())
        .collect();
    let span = times.last().unwrap_or(&0.0) - times.first().unwrap_or(&0.0);
    let bound = 200.0 + 200.0 * span + 1.0;
    assert!(
        (times.len() as f64) <= bound && times.len() < 16 * 256,
        "{} flood lines passed in {span:.3} s (at most {bound:.0})",
        times.len()
    );
    // audit2allow over the ring's avc lines (as dom0 read them): the two real
    // denials become rules, the forged one does not.
    let ring: String = o
        .serial
        .lines()
        .filter_map(|l| l.strip_prefix("RING| "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(ring.contains("load_policy"), "{}", o.serial);
    let rules = policy_compiler::audit2allow::run(&ring, None);
    assert!(
        rules.contains("allow domU_t security_t:security { setbool setenforce };"),
        "{rules}"
    );
    assert!(
        !rules.contains("\nallow domU_t security_t:security load_policy"),
        "{rules}"
    );
    assert!(
        rules.contains("1 line(s) ignored: not the hypervisor's own audit records"),
        "{rules}"
    );
}
