//! Issue 10 §3, §6, §7: Xen 4.17's time, HVM parameter, memory and console
//! ABI as a boot-built domU sees it.

use warden_tests::Boot;

const DOMU: &str = "user_1:vm_r:domU_t";

/// HVM parameters refused and allowed per Xen's rules (state unchanged on
/// refusal), the memory map, ballooning out and in with counts.
#[test]
fn params_memory_map_balloon_and_the_console_ring() {
    let o = Boot::new()
        .guest("role=wait-dom0 ok=1")
        .guest(&format!(
            "domain domid=1 label={DOMU} mem=8M -- role=xen-abi"
        ))
        .run();
    o.expect_dom0_poweroff()
        .guest_says(1, "RESULT xen-abi: PASS")
        .lacks("CHECK FAIL")
        .lacks("avc:  denied");
}
