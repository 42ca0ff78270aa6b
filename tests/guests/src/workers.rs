//! domU roles that do one thing: park, burn CPU, measure, crash, time.

use crate::check;
use core::sync::atomic::{AtomicU64, Ordering};
use warden_abi::vcpu::{RUNSTATE_RUNNING, SSHOTTMR_FUTURE, VIRQ_TIMER};
use warden_guest::hypercall as hc;
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::time::now_ns;

/// Park: block forever (a domain others act on).
pub fn victim() -> ! {
    println!("victim: parked");
    loop {
        let _ = hc::sched_block();
    }
}

/// A guest labelled with no permission at all (system_u:system_r:unlabeled_t):
/// every call below is refused; dom0 finds the denials in the console ring
/// and checks the guest is still running (its shutdown was refused too).
pub fn mute() -> ! {
    let _ = hc::console_write(b"mute: this line must never appear\n");
    let _ = hc::sched_yield();
    let _ = hc::sched_block();
    let _ = hc::sched_poll(&[], 1);
    let _ = hc::sched_shutdown(warden_abi::sched::SHUTDOWN_POWEROFF);
    // Still here: keep asking (each refusal is another audit line), slowly.
    loop {
        let t = warden_guest::time::rdtsc();
        while warden_guest::time::rdtsc() - t < 50_000_000 {
            core::hint::spin_loop();
        }
        let _ = hc::sched_yield();
    }
}

/// Print a tick every ~100 ms of system time, forever.
pub fn canary() -> ! {
    let mut n = 0u64;
    loop {
        n += 1;
        println!("canary: tick {n}");
        warden_guest::time::sleep_ns(100_000_000);
    }
}

/// Burn CPU forever, never yielding.
pub fn burner() -> ! {
    println!("burner: burning");
    let mut x = 1u64;
    loop {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        core::hint::black_box(x);
    }
}

/// Compute for `seconds=` of system time, then check this vCPU got at least
/// `min=` percent of the elapsed time (its runstate's running time).
pub fn worker(boot: &Boot) -> ! {
    let secs: u64 = boot
        .arg("seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let min: u64 = boot.arg("min").and_then(|s| s.parse().ok()).unwrap_or(30);
    let start = now_ns();
    let rs0 = hc::vcpu_runstate(0).unwrap_or_default();
    let mut x = 1u64;
    while now_ns() - start < secs * 1_000_000_000 {
        for _ in 0..10_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        core::hint::black_box(x);
    }
    let end = now_ns();
    let rs1 = hc::vcpu_runstate(0).unwrap_or_default();
    let ran = rs1.time[RUNSTATE_RUNNING as usize] - rs0.time[RUNSTATE_RUNNING as usize];
    let share = ran * 100 / (end - start).max(1);
    println!(
        "worker: ran {} ms of {} ms: {share}% of the CPU (runnable {} ms)",
        ran / 1_000_000,
        (end - start) / 1_000_000,
        (rs1.time[1] - rs0.time[1]) / 1_000_000
    );
    check!(
        share >= min,
        "worker got {share}% of the CPU (at least {min}%)"
    );
    crate::report::finish("worker")
}

static COUNTS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// About a thousand instructions (no PAUSE: under TCG it leaves the translated code).
fn work() {
    let mut x = 1u64;
    for _ in 0..300 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    core::hint::black_box(x);
}

fn count(v: u32) -> ! {
    loop {
        COUNTS[v as usize % 8].fetch_add(1, Ordering::Relaxed);
        work();
    }
}

/// Bring up every vCPU (more than the host has CPUs), have each count, and
/// check they all made progress.
pub fn smp(boot: &Boot) -> ! {
    let n = boot.vcpus().min(8);
    for v in 1..n {
        let r = warden_guest::smp::start(v, count);
        check!(r.is_ok(), "vCPU {v} started: {r:?}");
        check!(hc::vcpu_is_up(v) == Ok(true), "vCPU {v} is up");
    }
    let start = now_ns();
    let target = 20_000u64;
    loop {
        COUNTS[0].fetch_add(1, Ordering::Relaxed);
        work();
        let all = (0..n).all(|v| COUNTS[v as usize].load(Ordering::Relaxed) >= target);
        if all || now_ns() - start > 120_000_000_000 {
            break;
        }
    }
    for v in 0..n {
        let c = COUNTS[v as usize].load(Ordering::Relaxed);
        let rs = hc::vcpu_runstate(v).unwrap_or_default();
        println!(
            "smp: vCPU {v}: {c} iterations, running {} ms, runnable {} ms",
            rs.time[0] / 1_000_000,
            rs.time[1] / 1_000_000
        );
        check!(c >= target, "vCPU {v} of {n} ran ({c} iterations)");
    }
    for v in 1..n {
        check!(hc::vcpu_down(v).is_ok(), "vCPU {v} taken down");
        check!(hc::vcpu_is_up(v) == Ok(false), "vCPU {v} is down");
    }
    crate::report::finish("smp")
}

static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);
static TIMER_PORT: AtomicU64 = AtomicU64::new(u64::MAX);

fn on_upcall(_vcpu: u32, port: u32) {
    if port as u64 == TIMER_PORT.load(Ordering::Acquire) {
        TIMER_FIRED.fetch_add(1, Ordering::AcqRel);
    }
}

/// The single-shot timer and the event upcall: arm, block, get woken by
/// the upcall no earlier than the deadline.
pub fn timer(_boot: &Boot) -> ! {
    warden_guest::events::set_upcall_handler(on_upcall);
    check!(
        warden_guest::evtchn::init().is_ok(),
        "shared_info page mapped"
    );
    match warden_guest::evtchn::bind_virq(VIRQ_TIMER, 0) {
        Ok(p) => TIMER_PORT.store(p as u64, Ordering::Release),
        Err(e) => {
            check!(false, "VIRQ_TIMER bound: {e}");
        }
    }
    warden_guest::events::enable();
    for round in 1..=5u64 {
        let before = TIMER_FIRED.load(Ordering::Acquire);
        let t0 = now_ns();
        let deadline = t0 + 20_000_000 * round;
        // Without the future flag: on a loaded host more than 20 ms may pass
        // before the hypervisor reads its clock, and the timer then fires at
        // once (the checks below still hold); the flag's refusal is checked
        // on its own after the rounds.
        check!(
            hc::vcpu_set_timer(0, deadline, 0).is_ok(),
            "round {round}: timer armed"
        );
        while TIMER_FIRED.load(Ordering::Acquire) == before && now_ns() - t0 < 10_000_000_000 {
            let _ = hc::sched_block();
        }
        let t1 = now_ns();
        check!(
            TIMER_FIRED.load(Ordering::Acquire) == before + 1,
            "round {round}: the timer upcall arrived"
        );
        check!(
            t1 >= deadline,
            "round {round}: woken after the deadline ({} ns late)",
            t1.saturating_sub(deadline)
        );
    }
    // Xen 4.17 ignores SSHOTTMR_FUTURE: a deadline already past fires at once.
    let before = TIMER_FIRED.load(Ordering::Acquire);
    let past = now_ns() - 1;
    check!(
        hc::vcpu_set_timer(0, past, SSHOTTMR_FUTURE).is_ok(),
        "a timer in the past with the future flag is accepted (Xen 4.17)"
    );
    let t0 = now_ns();
    while TIMER_FIRED.load(Ordering::Acquire) == before && now_ns() - t0 < 10_000_000_000 {
        let _ = hc::sched_block();
    }
    check!(
        TIMER_FIRED.load(Ordering::Acquire) == before + 1,
        "the past deadline fired at once"
    );
    check!(
        warden_guest::events::upcalls(0) >= 5,
        "upcalls taken: {}",
        warden_guest::events::upcalls(0)
    );
    crate::report::finish("timer")
}

/// Misbehave as `kind=` says; the hypervisor must crash this domain alone.
pub fn crash(boot: &Boot) -> ! {
    let kind = boot.arg("kind").unwrap_or("npf");
    println!("crash: about to misbehave ({kind})");
    match kind {
        // Map guest-physical 1 GiB (far beyond our RAM) at virtual 1 GiB in
        // our own page tables, then jump there: a nested page fault on an
        // instruction fetch (a data access there is unclaimed MMIO, which
        // reads all-ones and does not stop the guest).
        "npf" => {
            let cr3: u64;
            // SAFETY: reading CR3 in ring 0.
            unsafe { core::arch::asm!("mov {}, cr3", out(reg) cr3) };
            let pml4 = (cr3 & !0xfff) as *const u64;
            // SAFETY: our boot page tables are identity-mapped and ours to change.
            unsafe {
                let pdpt = (pml4.read() & 0x000f_ffff_ffff_f000) as *mut u64;
                // A 1 GiB page: PDPT entry 1 maps virtual 1 GiB to physical 1 GiB.
                pdpt.add(1).write_volatile((1u64 << 30) | 0x83);
                core::arch::asm!("invlpg [{}]", in(reg) 1u64 << 30);
                core::arch::asm!("call {}", in(reg) 1u64 << 30);
            }
        }
        // Load an empty IDT, then raise an exception: #GP -> #DF -> triple fault.
        "triple" => {
            #[repr(C, packed)]
            struct P {
                limit: u16,
                base: u64,
            }
            let p = P { limit: 0, base: 0 };
            // SAFETY: deliberately makes every exception unhandled.
            unsafe { core::arch::asm!("lidt [{}]", "int3", in(reg) &p) };
        }
        // I/O ports belong to nobody here: writes are ignored, reads give
        // all-ones (never a crash); then crash through #UD like `ud`.
        "io" => {
            let v: u8;
            // SAFETY: touches an unclaimed I/O port (the hypervisor ignores
            // the write and answers the read).
            unsafe {
                core::arch::asm!("out 0x80, al", in("al") 0x5au8);
                core::arch::asm!("in al, 0x80", out("al") v);
            }
            println!("io: unclaimed port 0x80 reads {v:#x} after a write");
            // SAFETY: deliberately raises #UD.
            unsafe { core::arch::asm!("ud2") };
        }
        // An invalid opcode: our own IDT reports it and shuts us down (crash).
        _ => {
            // SAFETY: deliberately raises #UD.
            unsafe { core::arch::asm!("ud2") };
        }
    }
    println!("crash: still running after '{kind}': the hypervisor did not stop this domain");
    warden_guest::exit::poweroff()
}

/// Measure `count=` null hypercalls (xen_version VERSION); print the result.
pub fn bench(boot: &Boot) -> ! {
    let count: u64 = boot
        .arg("count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let t = warden_guest::events::time_info();
    // Warm the path (and the AVC).
    for _ in 0..1000 {
        let _ = hc::xen_version(warden_abi::version::VERSION, 0);
    }
    let c0 = warden_guest::time::rdtsc();
    let mut bad = 0u64;
    for _ in 0..count {
        if hc::xen_version(warden_abi::version::VERSION, 0).is_err() {
            bad += 1;
        }
    }
    let c1 = warden_guest::time::rdtsc();
    let (t0, t1) = (
        warden_guest::time::system_time(&t, c0),
        warden_guest::time::system_time(&t, c1),
    );
    let ns = t1 - t0;
    // start_ns/end_ns: Xen system time (shared by all domains), so that
    // several guests' windows can be compared.
    println!(
        "BENCH d{} calls={count} failed={bad} ns={ns} ns_per_call={} calls_per_s={} start_ns={t0} end_ns={t1}",
        boot.domid(),
        ns / count.max(1),
        count * 1_000_000_000 / ns.max(1)
    );
    if boot.privileged() {
        crate::scenarios::wait_for_others(boot);
    }
    warden_guest::exit::poweroff()
}

/// A 4 KiB page for the hypercall-page MSR.
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut HC_PAGE: Page = Page([0; 4096]);

/// What a PVH guest sees of Xen's CPU interface: the CPUID leaves, the
/// hypercall page written through its MSR and called, Xen's MSR answers,
/// unclaimed ports, port 0xE9.
pub fn pvh_cpu(boot: &Boot) -> ! {
    use core::arch::x86_64::__cpuid;
    let l0 = __cpuid(0x4000_0000);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&l0.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&l0.ecx.to_le_bytes());
    sig[8..].copy_from_slice(&l0.edx.to_le_bytes());
    check!(
        &sig == b"XenVMMXenVMM" && l0.eax == 0x4000_0005,
        "CPUID 0x40000000: {:?}, max leaf {:#x}",
        core::str::from_utf8(&sig),
        l0.eax
    );
    check!(
        __cpuid(0x4000_0001).eax == 0x0004_0011,
        "CPUID base+1: Xen 4.17"
    );
    let l2 = __cpuid(0x4000_0002);
    check!(
        (l2.eax, l2.ebx) == (1, 0x4000_0000),
        "CPUID base+2: one hypercall page, MSR {:#x}",
        l2.ebx
    );
    let l4 = __cpuid(0x4000_0004);
    check!(
        l4.ecx == boot.domid() as u32 && l4.ebx == 0 && l4.eax & 0x58 == 0x58,
        "CPUID base+4: vCPU 0, domid {}, flags {:#x}",
        l4.ecx,
        l4.eax
    );
    let v0 = __cpuid(0);
    check!(
        v0.ebx == 0x6874_7541,
        "CPUID 0: the host's vendor (AuthenticAMD: {:#x})",
        v0.ebx
    );
    let rd = |msr: u32| -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: an MSR the hypervisor answers (no #GP for these).
        unsafe { core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi) };
        ((hi as u64) << 32) | lo as u64
    };
    check!(rd(0x4000_0000) == 0, "the hypercall-page MSR reads 0");
    check!(rd(0xC001_0015) == 0, "HWCR reads 0");
    check!(
        rd(0x1B) == 0xFEE0_0900,
        "APIC_BASE of vCPU 0: {:#x}",
        rd(0x1B)
    );
    let page = (&raw mut HC_PAGE) as u64;
    // SAFETY: writes the hypercall-page MSR with our own page's address.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") 0x4000_0000u32, in("eax") page as u32, in("edx") (page >> 32) as u32)
    };
    // SAFETY: the page is ours; the hypervisor just wrote it.
    let stub = unsafe { core::ptr::read_volatile((page + 17 * 32) as *const [u8; 9]) };
    check!(
        stub == [0xb8, 17, 0, 0, 0, 0x0f, 0x01, 0xd9, 0xc3],
        "hypercall page stub 17: {stub:x?}"
    );
    let direct = warden_guest::hypercall::xen_version(0, 0);
    let via_page: u64;
    // SAFETY: calls stub 17 (xen_version) with cmd 0 (XENVER_version),
    // which takes no buffer; the stub preserves everything but RAX.
    unsafe {
        core::arch::asm!(
            "call {f}",
            f = in(reg) page + 17 * 32,
            in("rdi") 0u64,
            in("rsi") 0u64,
            lateout("rax") via_page,
            clobber_abi("C"),
        )
    };
    check!(
        direct == Ok(via_page),
        "xen_version through the hypercall page: {via_page:#x} (direct {direct:?})"
    );
    let v: u8;
    // SAFETY: an unclaimed port: the hypervisor answers all-ones.
    unsafe { core::arch::asm!("in al, 0x71", out("al") v) };
    check!(v == 0xff, "unclaimed port 0x71 reads {v:#x}");
    for b in b"e9: hello through port 0xE9\n" {
        // SAFETY: port 0xE9 is the debug console.
        unsafe { core::arch::asm!("out 0xe9, al", in("al") *b) };
    }
    crate::report::finish("pvh-cpu")
}
