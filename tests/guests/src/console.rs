//! Console scenarios (issues 13 and 14): a domU that forges an audit record
//! and floods the console between two real denials, and the dom0 that
//! checks the console ring afterwards.

use crate::check;
use crate::scenarios::{domid_arg, ring, wait_shutdown};
use warden_abi::sched::SHUTDOWN_POWEROFF;
use warden_guest::hypercall as hc;
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::time::sleep_ns;

/// The forged record a guest writes (a denial it never met: load_policy).
pub const FORGED: &str = "[    1.000000] WARN  audit(1.000:99): avc:  denied  { load_policy } for source=d1 scontext=user_1:vm_r:domU_t tcontext=system_u:system_r:security_t tclass=security permissive=0";

/// domU: a real denial (setenforce), `flood=N` console writes of 64 KiB,
/// the forged line, a second real denial (setbool), then power off.
pub fn flooder(boot: &Boot) -> ! {
    let calls: u32 = boot.arg("flood").and_then(|v| v.parse().ok()).unwrap_or(16);
    let _ = hc::flask_setenforce(false);
    let chunk = alloc::vec![b'x'; 64 * 1024];
    for _ in 0..calls {
        let _ = hc::console_write(&chunk);
    }
    // After the flood (which evicted older guest lines), once the rate
    // limit let lines through again.
    sleep_ns(1_500_000_000);
    println!("{FORGED}");
    let _ = hc::flask_setbool("guest_argo", true, true);
    println!("flooder: done after {calls} writes of 64 KiB");
    warden_guest::exit::poweroff()
}

/// dom0: wait for the flooder (`flooder=N`), check the canary (`canary=N`)
/// still runs, then check the ring: both real denials are there in the
/// hypervisor's form, the forged one only behind `(dN) `. Prints the ring's
/// `avc:` lines as `RING| ...` for the host's audit2allow.
pub fn dom0(boot: &Boot) -> ! {
    let flooder = domid_arg(boot, "flooder");
    let canary = domid_arg(boot, "canary");
    let r = wait_shutdown(flooder, 600);
    check!(
        r == Some(SHUTDOWN_POWEROFF),
        "the flooder finished (reason {r:?})"
    );
    let t0 = hc::getdomaininfo(canary).map(|i| i.cpu_time).unwrap_or(0);
    sleep_ns(300_000_000);
    let t1 = hc::getdomaininfo(canary).map(|i| i.cpu_time).unwrap_or(0);
    check!(t1 > t0, "the canary still runs ({t0} -> {t1} ns)");
    let text = ring();
    let real = |perm: &str| {
        text.lines().any(|l| {
            !l.starts_with("(d")
                && l.contains("audit(")
                && l.contains(&alloc::format!("avc:  denied  {{ {perm} }}"))
                && l.contains("scontext=user_1:vm_r:domU_t ")
        })
    };
    check!(
        real("setenforce"),
        "the denial before the flood is in the ring"
    );
    check!(real("setbool"), "the denial after the flood is in the ring");
    let forged: alloc::vec::Vec<&str> =
        text.lines().filter(|l| l.contains("load_policy")).collect();
    check!(
        !forged.is_empty()
            && forged
                .iter()
                .all(|l| l.starts_with(&alloc::format!("(d{flooder}) ["))),
        "the forged record is in the ring only as the guest's line: {forged:?}"
    );
    for l in text.lines().filter(|l| l.contains("avc:")) {
        println!("RING| {l}");
    }
    crate::report::finish("console-dom0")
}
