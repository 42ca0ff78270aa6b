//! Scenarios: the dom0 orchestrators and the domUs they observe.

use crate::check;
use crate::matrix::{self, Ctx, Good, Who};
use alloc::string::String;
use alloc::vec::Vec;
use warden_abi::domctl::{self as dc, GetDomainInfo};
use warden_abi::errno::{EACCES, EINVAL, EOPNOTSUPP, ESRCH};
use warden_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
use warden_abi::xen::hvm_save as hs;
use warden_abi::{DOMID_SELF, DomId, Pod};
use warden_guest::hypercall::{self as hc, Errno};
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::time::{now_ns, sleep_ns};
use warden_guest::util::cstr;

/// Domain ids from a comma list (`guests=1,2,4`).
pub fn ids(boot: &Boot, key: &str) -> Vec<DomId> {
    boot.arg(key)
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

pub fn domid_arg(boot: &Boot, key: &str) -> DomId {
    boot.arg(key).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Wait (up to `secs` of system time) until domain `d` has shut down; its reason.
pub fn wait_shutdown(d: DomId, secs: u64) -> Option<u32> {
    let until = now_ns() + secs * 1_000_000_000;
    while now_ns() < until {
        match hc::getdomaininfo(d) {
            Ok(i) if i.flags & dc::DOMINF_SHUTDOWN != 0 => {
                return Some((i.flags >> dc::DOMINF_SHUTDOWN_SHIFT) & dc::DOMINF_SHUTDOWN_MASK);
            }
            Ok(_) => {}
            Err(e) => {
                println!("wait: getdomaininfo d{d}: {e}");
                return None;
            }
        }
        sleep_ns(20_000_000);
    }
    println!("wait: d{d} did not shut down within {secs} s");
    None
}

/// Wait for every domain listed in `wait=` to shut down (the bench roles).
pub fn wait_for_others(boot: &Boot) {
    for d in ids(boot, "wait") {
        let _ = wait_shutdown(d, 600);
    }
}

/// The whole console ring, read with incremental readconsole calls.
pub fn ring() -> String {
    let mut all = Vec::new();
    let mut buf = alloc::vec![0u8; 8192];
    let mut index = 0;
    let mut first = true;
    while let Ok((n, next)) = hc::readconsole(&mut buf, index, !first, false) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        index = next;
        first = false;
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn label(sid: u32) -> String {
    let mut b = [0u8; 256];
    match hc::flask_sid_to_context(sid, &mut b) {
        Ok(_) => String::from(cstr(&b)),
        Err(_) => alloc::format!("sid {sid}"),
    }
}

fn sid(ctx: &str) -> u32 {
    hc::flask_context_to_sid(ctx).unwrap_or(0)
}

/// The policy handed to dom0 as a module with command line `name`.
fn module(boot: &Boot, name: &str) -> &'static [u8] {
    boot.modules()
        .find(|(_, c)| *c == name)
        .map(|(d, _)| d)
        .unwrap_or(&[])
}

// ------------------------------------------------------------ the matrix

/// A domU running the matrix (`who=`, `victim=`, `permissive=1`).
pub fn matrix_guest(boot: &Boot) -> ! {
    let who = boot.arg("who").and_then(Who::parse).unwrap_or(Who::DomU);
    let permissive = boot.arg("permissive") == Some("1");
    let mut c = Ctx::new(
        who,
        boot.domid(),
        domid_arg(boot, "victim"),
        permissive,
        &[],
        boot.mem_bytes(),
    );
    matrix::run(&mut c);
    if !permissive {
        matrix::run_final(&mut c);
    }
    crate::report::finish("matrix")
}

/// dom0 of the matrix scenario: wait for the domUs' own verdicts, check the
/// victim was not touched (enforcing) and the denials are in the console
/// ring, check the mute guest, run the matrix as dom0, then the final
/// operations (clear the ring, shut the victim down).
pub fn matrix_dom0(boot: &Boot) -> ! {
    let guests = ids(boot, "guests");
    let victim = domid_arg(boot, "victim");
    let mute = domid_arg(boot, "mute");
    let permissive = boot.arg("permissive") == Some("1");
    let before = hc::getdomaininfo(victim);
    check!(
        before.is_ok(),
        "victim d{victim} exists: {:?}",
        before.err()
    );
    for &g in &guests {
        let r = wait_shutdown(g, 300);
        check!(
            r == Some(SHUTDOWN_POWEROFF),
            "d{g} finished its matrix and powered off (reason {r:?})"
        );
    }
    let after = hc::getdomaininfo(victim);
    check!(after.is_ok(), "victim d{victim} still exists");
    if let (Ok(b), Ok(a)) = (before, after)
        && !permissive
    {
        check!(
            a.flags & dc::DOMINF_PAUSED == 0,
            "victim not paused (flags {:#x})",
            a.flags
        );
        check!(a.flags & dc::DOMINF_SHUTDOWN == 0, "victim not shut down");
        check!(
            a.tot_pages == b.tot_pages,
            "victim memory unchanged ({} pages)",
            a.tot_pages
        );
        check!(a.max_pages == b.max_pages, "victim memory limit unchanged");
        check!(
            a.ssidref == b.ssidref,
            "victim label unchanged ({})",
            label(a.ssidref)
        );
        check!(
            a.nr_online_vcpus == b.nr_online_vcpus,
            "victim vCPUs unchanged"
        );
    }
    check!(
        hc::flask_getenforce() == Ok(if permissive { 0 } else { 1 }),
        "FLASK mode unchanged"
    );
    check!(
        hc::flask_getbool("guest_writeconsole").map(|b| b.1) == Ok(true),
        "booleans unchanged"
    );
    // The denials the domUs met are in the console ring.
    let text = ring();
    for &g in &guests {
        let l = label(hc::getdomaininfo(g).map(|i| i.ssidref).unwrap_or(0));
        let n = text
            .lines()
            .filter(|x| x.contains("avc:  denied") && x.contains(&alloc::format!("scontext={l} ")))
            .filter(|x| !permissive || x.ends_with("permissive=1"))
            .count();
        check!(
            n > 0,
            "{n} avc denials of d{g} ({l}) in the console ring (readconsole)"
        );
    }
    if mute != 0 {
        // It may not have run yet: give it time to make its calls.
        let until = now_ns() + 60_000_000_000;
        let mut t = text;
        while now_ns() < until && t.matches("scontext=system_u:system_r:unlabeled_t").count() < 7 {
            sleep_ns(50_000_000);
            t = ring();
        }
        mute_checks(mute, &t);
    }
    // dom0's own matrix (the "allowed" column).
    let mut c = Ctx::new(
        Who::Dom0,
        0,
        victim,
        permissive,
        module(boot, "policy"),
        boot.mem_bytes(),
    );
    c.mute = mute;
    matrix::run(&mut c);
    // Final operations: clear the ring, shut the victim down; check both happened.
    matrix::run_final(&mut c);
    let r = wait_shutdown(victim, 30);
    check!(
        r == Some(SHUTDOWN_POWEROFF),
        "remote_shutdown took the victim down (reason {r:?})"
    );
    let rest = ring();
    check!(
        !rest.contains("Warden ready:"),
        "readconsole with clear emptied the ring ({} bytes left)",
        rest.len()
    );
    crate::report::finish("matrix-dom0")
}

/// The mute guest (no permission at all): its calls must all have been
/// refused, with an avc line each, and it must still be running.
fn mute_checks(mute: DomId, text: &str) {
    check!(
        !text.contains("mute: this line must never appear"),
        "its console write did not happen"
    );
    check!(
        !text.contains(&alloc::format!("Domain {mute} shut down")),
        "its shutdown did not happen"
    );
    let denied = |perm: &str| {
        text.lines()
            .filter(|l| {
                l.contains("avc:  denied")
                    && l.contains(&alloc::format!("{{ {perm} }}"))
                    && l.contains("scontext=system_u:system_r:unlabeled_t ")
            })
            .count()
    };
    let wc = denied("writeconsole");
    let ss = denied("sched_self");
    check!(
        wc >= 1,
        "avc denial of writeconsole for the mute guest ({wc})"
    );
    // yield, block, poll, shutdown, then the yields it keeps making: it is still running.
    check!(
        ss >= 5,
        "avc denials of sched_self for yield, block, poll, shutdown and after ({ss})"
    );
    for (op, n) in [
        ("ConsoleWrite", wc >= 1),
        ("SchedYield", ss >= 1),
        ("SchedBlock", ss >= 2),
        ("SchedPoll", ss >= 3),
        ("SchedShutdown", ss >= 4),
    ] {
        println!(
            "MATRIX d{mute} {op} rc=-13 expect=deny {} (seen in the console ring)",
            if n { "OK" } else { "FAIL" }
        );
    }
}

// ------------------------------------------------------------ labels

/// A domU (domU_t) that tries to relabel itself: up to dom0_t (refused),
/// down to isolated_domU_t (allowed), then back (refused). It cannot ask the
/// security server for SIDs (no security permission), so it tries the SIDs
/// the boot made (1..=`maxsid`) and reports which one it could take: exactly
/// one must work (dom0 checks it is isolated_domU_t).
pub fn relabel_self(boot: &Boot) -> ! {
    let me = boot.domid() as u32;
    let eacces = Err(Errno(EACCES));
    let r = hc::flask_relabel_domain(warden_abi::DOMID_SELF as u32, 3);
    check!(r == eacces, "relabel myself to dom0_t: {r:?}");
    let max: u32 = boot
        .arg("maxsid")
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let mut taken = Vec::new();
    for sid in 1..=max {
        match hc::flask_relabel_domain(me, sid) {
            Ok(_) => taken.push(sid),
            Err(e) if e.0 == EACCES || e.0 == EINVAL => {}
            Err(e) => {
                check!(false, "relabel to SID {sid}: unexpected {e}");
            }
        }
    }
    check!(
        taken.len() == 1,
        "exactly one label could be taken: SIDs {taken:?}"
    );
    let r = taken.first().map_or(-(EACCES as i64), |_| 0);
    crate::matrix::judge(boot.domid(), "FlaskRelabelSelf", true, Good::Zero, r);
    let domu: u32 = boot.arg("domu").and_then(|s| s.parse().ok()).unwrap_or(12);
    let r = hc::flask_relabel_domain(me, domu);
    check!(
        r == eacces,
        "the new label cannot relabel itself back to domU_t: {r:?}"
    );
    crate::report::finish("relabel-self")
}

/// dom0 of the labels scenario.
pub fn labels_dom0(boot: &Boot) -> ! {
    let iso = sid("user_1:vm_r:isolated_domU_t");
    check!(iso != 0, "context_to_sid(isolated_domU_t) = {iso}");
    // createdomain with an ssidref gives the domain that label.
    let d = hc::createdomain(0, iso, 1);
    check!(d.is_ok(), "createdomain with ssidref {iso}: {d:?}");
    let d = d.unwrap_or(0);
    let i = hc::getdomaininfo(d);
    check!(
        i.is_ok_and(|i| i.ssidref == iso),
        "getdomaininfo(d{d}).ssidref = {:?}",
        i.map(|i| i.ssidref)
    );
    check!(
        label(iso) == "user_1:vm_r:isolated_domU_t",
        "sid_to_context({iso}) = {}",
        label(iso)
    );
    // A relabel the policy forbids (isolated_domU_t -> domU_t: no transition) changes nothing.
    let r = hc::flask_relabel_domain(d as u32, sid("user_1:vm_r:domU_t"));
    check!(
        r == Err(Errno(EACCES)),
        "relabel isolated -> domU_t refused: {r:?}"
    );
    check!(
        hc::getdomaininfo(d).is_ok_and(|i| i.ssidref == iso),
        "label unchanged after the refusal"
    );
    // Build under prot_domU_t_building, then relabel to prot_domU_t (RELABEL_DOMAIN).
    let building = sid("user_1:vm_r:prot_domU_t_building");
    let prot = sid("user_1:vm_r:prot_domU_t");
    let p = hc::createdomain(0, building, 1).unwrap_or(0);
    check!(p != 0, "createdomain under prot_domU_t_building");
    check!(
        hc::max_mem(p, 1024).is_ok(),
        "the builder may still set memory"
    );
    let r = hc::flask_relabel_domain(p as u32, prot);
    check!(r.is_ok(), "RELABEL_DOMAIN d{p} to prot_domU_t: {r:?}");
    check!(
        hc::getdomaininfo(p).is_ok_and(|i| i.ssidref == prot),
        "d{p} is now {}",
        label(hc::getdomaininfo(p).map(|i| i.ssidref).unwrap_or(0))
    );
    // An invalid SID is refused (EINVAL), and creates nothing.
    let r = hc::createdomain(0, 99_999, 1);
    check!(
        r == Err(Errno(EINVAL)),
        "createdomain with an invalid ssidref: {r:?}"
    );
    // A null ssidref is not libxl's default: Xen labels the domain
    // unlabeled_t, which dom0 may not create.
    let r = hc::createdomain_with(0, &hc::pvh_config(0, 1));
    check!(
        r == Err(Errno(EACCES)),
        "createdomain with ssidref 0 (unlabeled_t) refused: {r:?}"
    );
    // The self-relabelling guest.
    let g = domid_arg(boot, "selfguest");
    if g != 0 {
        let r = wait_shutdown(g, 120);
        check!(r == Some(SHUTDOWN_POWEROFF), "d{g} finished (reason {r:?})");
        let i = hc::getdomaininfo(g);
        check!(
            i.is_ok_and(|i| i.ssidref == iso),
            "d{g} relabelled itself to isolated_domU_t: {}",
            label(i.map(|i| i.ssidref).unwrap_or(0))
        );
    }
    for x in [d, p] {
        check!(hc::destroydomain(x).is_ok(), "destroy d{x}");
    }
    crate::report::finish("labels-dom0")
}

// ------------------------------------------------------------ run time

fn livepatch_rc() -> Result<u64, Errno> {
    hc::livepatch(warden_abi::sysctl::livepatch::LIST)
}

/// dom0 of the run-time scenario: setenforce, booleans, loadpolicy.
pub fn runtime_dom0(boot: &Boot) -> ! {
    let denied = Err(Errno(EACCES));
    // LIST with room for nothing: 0 payloads after the (empty) result.
    let passes = Ok(0);
    // dom0 may not use live patching while dom0_livepatch is off.
    check!(
        livepatch_rc() == denied,
        "enforcing: livepatch_op denied to dom0"
    );
    // setenforce both ways.
    check!(hc::flask_setenforce(false).is_ok(), "setenforce 0");
    check!(hc::flask_getenforce() == Ok(0), "getenforce = 0");
    check!(
        livepatch_rc() == passes,
        "permissive: the same call passes the check (LIST returns 0)"
    );
    check!(hc::flask_setenforce(true).is_ok(), "setenforce 1");
    check!(hc::flask_getenforce() == Ok(1), "getenforce = 1");
    check!(livepatch_rc() == denied, "enforcing again: denied");
    // Booleans: a pending value changes nothing until committed.
    check!(
        hc::flask_getbool("dom0_livepatch").map(|b| (b.1, b.2)) == Ok((false, false)),
        "dom0_livepatch = 0: {:?}",
        hc::flask_getbool("dom0_livepatch")
    );
    check!(
        hc::flask_setbool("dom0_livepatch", true, false).is_ok(),
        "setbool dom0_livepatch=1 (pending)"
    );
    check!(
        hc::flask_getbool("dom0_livepatch").map(|b| (b.1, b.2)) == Ok((false, true)),
        "pending 1, current 0"
    );
    check!(livepatch_rc() == denied, "not committed: still denied");
    check!(
        hc::flask_simple(warden_abi::xsm::COMMITBOOLS).is_ok(),
        "commitbools"
    );
    check!(
        livepatch_rc() == passes,
        "dom0_livepatch=1 committed: allowed"
    );
    check!(
        hc::flask_setbool("dom0_livepatch", false, true).is_ok(),
        "setbool dom0_livepatch=0 with commit"
    );
    check!(livepatch_rc() == denied, "dom0_livepatch=0: denied again");
    // loadpolicy: a variant without dom0's xen:physinfo.
    check!(hc::physinfo().is_ok(), "default policy: physinfo allowed");
    let variant = module(boot, "variant");
    let corrupt = module(boot, "corrupt");
    let wrongclass = module(boot, "wrongclass");
    let default = module(boot, "policy");
    check!(
        !variant.is_empty() && !corrupt.is_empty() && !wrongclass.is_empty() && !default.is_empty(),
        "policy modules present"
    );
    check!(hc::flask_load(variant).is_ok(), "loadpolicy variant");
    check!(
        hc::physinfo().err() == Some(Errno(EACCES)),
        "the variant denies physinfo to dom0"
    );
    let r = hc::flask_load(corrupt);
    check!(r == Err(Errno(EINVAL)), "loadpolicy corrupt refused: {r:?}");
    check!(
        hc::physinfo().err() == Some(Errno(EACCES)),
        "the variant is still in force"
    );
    let r = hc::flask_load(wrongclass);
    check!(
        r == Err(Errno(EINVAL)),
        "loadpolicy lacking a checked permission, handle_unknown=reject, refused: {r:?}"
    );
    check!(
        hc::physinfo().err() == Some(Errno(EACCES)),
        "the variant is still in force"
    );
    let r = hc::flask_load(&[]);
    check!(r.is_err(), "loadpolicy of nothing refused: {r:?}");
    check!(hc::flask_load(default).is_ok(), "loadpolicy default");
    check!(hc::physinfo().is_ok(), "physinfo allowed again");
    check!(
        hc::flask_getenforce() == Ok(1),
        "still enforcing after the reloads"
    );
    crate::report::finish("runtime-dom0")
}

// ------------------------------------------------------------ lifecycle

fn free_pages() -> u64 {
    hc::physinfo().map(|p| p.free_pages).unwrap_or(0)
}

/// dom0 of the lifecycle scenario: pause, unpause, shutdown, destroy, and
/// memory accounting (destroy returns every page).
pub fn lifecycle_dom0(boot: &Boot) -> ! {
    let victim = domid_arg(boot, "victim");
    let einval = Err(Errno(EINVAL));
    // The policy does not give dom0 these on itself (and they would be EINVAL anyway).
    check!(hc::pausedomain(0).is_err(), "pausing oneself is refused");
    check!(
        hc::destroydomain(0).is_err(),
        "destroying oneself is refused"
    );
    check!(
        hc::unpausedomain(victim) == einval,
        "unpausing a domain that is not paused is refused"
    );
    check!(hc::pausedomain(victim).is_ok(), "pause the victim");
    check!(hc::pausedomain(victim).is_ok(), "pause it twice (counted)");
    let f = hc::getdomaininfo(victim).map(|i| i.flags).unwrap_or(0);
    check!(
        f & dc::DOMINF_PAUSED != 0 && f & dc::DOMINF_RUNNING == 0,
        "paused and not running (flags {f:#x})"
    );
    check!(hc::unpausedomain(victim).is_ok(), "unpause once");
    check!(
        hc::getdomaininfo(victim).is_ok_and(|i| i.flags & dc::DOMINF_PAUSED != 0),
        "still paused (count 1)"
    );
    check!(hc::unpausedomain(victim).is_ok(), "unpause again");
    check!(
        hc::getdomaininfo(victim).is_ok_and(|i| i.flags & dc::DOMINF_PAUSED == 0),
        "running again"
    );
    // Build a domain by hand and destroy it: free memory returns exactly.
    let free0 = free_pages();
    let d = hc::createdomain(0, 0, 2).unwrap_or(0);
    check!(d != 0, "createdomain: d{d}");
    check!(
        hc::getdomaininfo(d).is_ok_and(|i| i.nr_online_vcpus == 0
            && i.max_vcpu_id == dc::INVALID_MAX_VCPU_ID
            && i.flags & dc::DOMINF_PAUSED != 0
            && i.arch_config.emulation_flags == dc::X86_EMU_LAPIC
            && i.ssidref == warden_abi::xsm::SECINITSID_DOMU),
        "created paused, without vCPUs yet, PVH, labelled domU: {:?}",
        hc::getdomaininfo(d)
    );
    check!(
        hc::max_vcpus(d, 3) == einval,
        "max_vcpus must repeat createdomain's number"
    );
    check!(hc::max_vcpus(d, 2).is_ok(), "max_vcpus 2");
    check!(
        hc::getdomaininfo(d).is_ok_and(|i| i.max_vcpu_id == 1),
        "two vCPUs: max_vcpu_id 1"
    );
    // Xen 4.17's refusals of a createdomain it cannot honour; nothing is created.
    let before = free_pages();
    for (what, cfg, want) in [
        ("no vCPUs", hc::pvh_config(0x0c, 0), EINVAL),
        (
            "a PV guest",
            dc::CreateDomain {
                flags: 0,
                ..hc::pvh_config(0x0c, 1)
            },
            EINVAL,
        ),
        (
            "HAP without HVM",
            dc::CreateDomain {
                flags: dc::CDF_HAP,
                ..hc::pvh_config(0x0c, 1)
            },
            EINVAL,
        ),
        (
            "a full HVM guest's emulated devices",
            dc::CreateDomain {
                arch: dc::ArchDomainConfig {
                    emulation_flags: dc::X86_EMU_ALL & !dc::X86_EMU_VPCI,
                    misc_flags: 0,
                },
                ..hc::pvh_config(0x0c, 1)
            },
            EOPNOTSUPP,
        ),
        (
            "grant tables v2",
            dc::CreateDomain {
                grant_opts: 2,
                ..hc::pvh_config(0x0c, 1)
            },
            EINVAL,
        ),
        (
            "65 grant frames",
            dc::CreateDomain {
                max_grant_frames: 65,
                ..hc::pvh_config(0x0c, 1)
            },
            EINVAL,
        ),
        (
            "CPU pool 1",
            dc::CreateDomain {
                cpupool_id: 1,
                ..hc::pvh_config(0x0c, 1)
            },
            ESRCH,
        ),
    ] {
        let r = hc::createdomain_with(0, &cfg);
        check!(r == Err(Errno(want)), "createdomain with {what}: {r:?}");
    }
    check!(
        free_pages() == before,
        "the refused createdomains took no memory"
    );
    check!(hc::max_mem(d, 7168).is_ok(), "max_mem 7 MiB");
    let gfns: Vec<u64> = (0..1024).collect();
    let r = hc::populate_physmap(d, &gfns, 0);
    check!(r == Ok(1024), "populate 1024 pages: {r:?}");
    let r = hc::populate_physmap(d, &[4096, 8192], 9);
    check!(
        r == Ok(1),
        "populate two 2 MiB extents: the memory limit stops the second: {r:?}"
    );
    let i = hc::getdomaininfo(d);
    check!(
        i.is_ok_and(|i| i.tot_pages == 1536 && i.max_pages == 1792),
        "tot_pages 1536 of 1792: {:?}",
        i.map(|i| (i.tot_pages, i.max_pages))
    );
    check!(
        hc::current_reservation(d) == Ok(1536),
        "current_reservation = 1536"
    );
    let r = hc::decrease_reservation(d, &[0, 1, 2], 0);
    check!(r == Ok(3), "decrease_reservation of 3 pages: {r:?}");
    let r = hc::decrease_reservation(d, &[0], 0);
    check!(r == einval, "decreasing a page that is not there: {r:?}");
    let used = free0 - free_pages();
    check!(used >= 1533, "{used} frames used by d{d}");
    // libxc's PVH build (xg_dom_x86.c): read the context, set each vCPU's
    // MTRRs (write-back, enabled), then vCPU 0's PVH entry state.
    check!(
        hc::gethvmcontext_size(DOMID_SELF) == Err(Errno(ESRCH)),
        "a domctl names no domain by a reserved id"
    );
    let size = hc::gethvmcontext_size(d).unwrap_or(0) as usize;
    let mut img = alloc::vec![0u8; size];
    let n = hc::gethvmcontext(d, &mut img);
    check!(n.is_ok(), "gethvmcontext d{d}: {n:?} (size {size})");
    img.truncate(n.unwrap_or(0));
    let recs: Vec<(u16, u16, Vec<u8>)> = hc::hvm_context_records(&img)
        .map(|(t, i, b)| (t, i, b.to_vec()))
        .collect();
    let header = recs.iter().find(|r| r.0 == hs::HEADER).map(|r| r.2.clone());
    check!(
        header.is_some() && recs.iter().filter(|r| r.0 == hs::MTRR).count() == 2,
        "the image has a header and an MTRR record per vCPU"
    );
    let header = header
        .and_then(|h| hs::SaveHeader::from_bytes(&h))
        .unwrap_or_default();
    for (t, i, b) in recs.iter().filter(|r| r.0 == hs::MTRR) {
        let Some(mut m) = hs::HwMtrr::from_bytes(b) else {
            continue;
        };
        m.msr_mtrr_def_type = 6 | (1 << 11);
        let mut x = Vec::new();
        hc::hvm_context_push(&mut x, hs::HEADER, 0, &header);
        hc::hvm_context_push(&mut x, *t, *i, &m);
        x.extend_from_slice(&[0u8; 8]);
        check!(hc::sethvmcontext(d, &x).is_ok(), "MTRRs of d{d} vCPU {i}");
    }
    let bsp = hs::HwCpu {
        rip: 0x20_0000,
        rbx: 0x7000,
        cr0: 0x11,
        cs_limit: u32::MAX,
        ds_limit: u32::MAX,
        es_limit: u32::MAX,
        ss_limit: u32::MAX,
        tr_limit: 0x67,
        cs_arbytes: 0xC9B,
        ds_arbytes: 0xC93,
        es_arbytes: 0xC93,
        ss_arbytes: 0xC93,
        tr_arbytes: 0x8B,
        dr6: 0xFFFF_0FF0,
        dr7: 0x400,
        ..Default::default()
    };
    let mut x = Vec::new();
    hc::hvm_context_push(&mut x, hs::HEADER, 0, &header);
    hc::hvm_context_push(&mut x, hs::CPU, 0, &bsp);
    x.extend_from_slice(&[0u8; 8]);
    check!(
        hc::sethvmcontext(d, &x).is_ok(),
        "vCPU 0 of d{d}: the PVH entry state"
    );
    let mut back = alloc::vec![0u8; size];
    let n = hc::gethvmcontext(d, &mut back).unwrap_or(0);
    let cpu0 = hc::hvm_context_records(&back[..n])
        .find(|r| r.0 == hs::CPU && r.1 == 0)
        .and_then(|r| hs::HwCpu::from_bytes(r.2));
    check!(
        cpu0.is_some_and(|c| c.rip == 0x20_0000 && c.rbx == 0x7000 && c.cs_arbytes == 0xC9B),
        "gethvmcontext returns what was set"
    );
    check!(
        hc::hvm_context_records(&back[..n]).any(|r| r.0 == hs::MTRR
            && r.1 == 1
            && hs::HwMtrr::from_bytes(r.2).is_some_and(|m| m.msr_mtrr_def_type == 0x806)),
        "and the MTRRs set"
    );
    let mut bad = Vec::new();
    hc::hvm_context_push(&mut bad, hs::HEADER, 0, &header);
    hc::hvm_context_push(
        &mut bad,
        hs::CPU,
        0,
        &hs::HwCpu {
            cr0: 0x8000_0010,
            ..bsp
        },
    );
    bad.extend_from_slice(&[0u8; 8]);
    check!(
        hc::sethvmcontext(d, &bad) == einval,
        "paging without protected mode is refused"
    );
    let mut seven = Vec::new();
    hc::hvm_context_push(&mut seven, hs::HEADER, 0, &header);
    hc::hvm_context_push(&mut seven, hs::CPU, 7, &bsp);
    seven.extend_from_slice(&[0u8; 8]);
    check!(hc::sethvmcontext(d, &seven) == einval, "no vCPU 7");
    check!(hc::destroydomain(d).is_ok(), "destroy d{d}");
    check!(
        hc::getdomaininfo(d).err() == Some(Errno(warden_abi::errno::ESRCH)),
        "d{d} is gone"
    );
    let free1 = free_pages();
    check!(
        free1 == free0,
        "free memory back to its value: {free0} -> {free1} pages"
    );
    // libxc's PVH build of a real kernel (a test guest handed over as the
    // `kernel` module), run, and destroyed (xl create's hypervisor side).
    match boot.modules().find(|m| m.1 == "kernel") {
        Some((kernel, _)) => crate::xlbuild::build_and_run(kernel, victim),
        None => println!("lifecycle: no kernel module: the xl create flow is skipped"),
    }
    // Destroying a running guest returns its memory too.
    let vi = hc::getdomaininfo(victim).map(|i| i.tot_pages).unwrap_or(0);
    check!(
        hc::destroydomain(victim).is_ok(),
        "destroy the running victim d{victim}"
    );
    let free2 = free_pages();
    check!(
        free2 >= free1 + vi,
        "its {vi} pages came back ({free1} -> {free2})"
    );
    // A guest that shut itself down (poweroff) is seen as such.
    let g = domid_arg(boot, "poweroff");
    if g != 0 {
        let r = wait_shutdown(g, 120);
        check!(
            r == Some(SHUTDOWN_POWEROFF),
            "d{g} powered off (reason {r:?})"
        );
        check!(hc::destroydomain(g).is_ok(), "destroy d{g}");
    }
    let _ = DOMID_SELF;
    crate::report::finish("lifecycle-dom0")
}

/// dom0 that waits for guests to end (`crash=` ids must crash, `ok=` ids
/// must power off) while `alive=` ids keep running; checks the crash log lines.
pub fn wait_dom0(boot: &Boot) -> ! {
    for d in ids(boot, "crash") {
        let r = wait_shutdown(d, 180);
        check!(r == Some(SHUTDOWN_CRASH), "d{d} was crashed (reason {r:?})");
    }
    for d in ids(boot, "ok") {
        let r = wait_shutdown(d, 600);
        check!(
            r == Some(SHUTDOWN_POWEROFF),
            "d{d} passed and powered off (reason {r:?})"
        );
    }
    for d in ids(boot, "selfcrash") {
        let r = wait_shutdown(d, 180);
        check!(
            r == Some(SHUTDOWN_CRASH),
            "d{d} crashed itself (reason {r:?})"
        );
    }
    let text = ring();
    for d in ids(boot, "crash") {
        check!(
            text.contains(&alloc::format!("d{d}v0: crashed: ")),
            "the hypervisor logged why d{d} crashed"
        );
    }
    for d in ids(boot, "alive") {
        let i = hc::getdomaininfo(d);
        check!(
            i.is_ok_and(|i| i.flags & dc::DOMINF_SHUTDOWN == 0),
            "d{d} is still running"
        );
        let t0 = i.map(|i| i.cpu_time).unwrap_or(0);
        sleep_ns(200_000_000);
        let t1 = hc::getdomaininfo(d).map(|i| i.cpu_time).unwrap_or(0);
        check!(t1 > t0, "d{d} still gets CPU time ({t0} -> {t1} ns)");
    }
    crate::report::finish("wait-dom0")
}

/// dom0 of the scheduling scenario: the worker must get its share next to a burner.
pub fn sched_dom0(boot: &Boot) -> ! {
    let worker = domid_arg(boot, "worker");
    let burner = domid_arg(boot, "burner");
    let b0 = hc::getdomaininfo(burner).map(|i| i.cpu_time).unwrap_or(0);
    let w0 = hc::getdomaininfo(worker).map(|i| i.cpu_time).unwrap_or(0);
    let r = wait_shutdown(worker, 300);
    check!(
        r == Some(SHUTDOWN_POWEROFF),
        "the worker got its share and powered off (reason {r:?})"
    );
    let b1 = hc::getdomaininfo(burner).map(|i| i.cpu_time).unwrap_or(0);
    let w1 = hc::getdomaininfo(worker).map(|i| i.cpu_time).unwrap_or(0);
    let (b, w) = (b1 - b0, w1 - w0);
    println!(
        "sched: burner ran {} ms, worker {} ms meanwhile",
        b / 1_000_000,
        w / 1_000_000
    );
    check!(
        w * 10 >= b * 6,
        "the worker's CPU time is comparable to the burner's ({w} vs {b} ns)"
    );
    check!(
        hc::getdomaininfo(burner).is_ok_and(|i| i.flags & dc::DOMINF_SHUTDOWN == 0),
        "the burner is still running"
    );
    crate::report::finish("sched-dom0")
}

#[allow(dead_code)]
fn info_str(i: &GetDomainInfo) -> String {
    alloc::format!("d{} flags {:#x} pages {}", i.domain, i.flags, i.tot_pages)
}

// ------------------------------------------------------------ flask=disabled, flask=late

/// A domU under flask=disabled (Xen's dummy module): what an unprivileged
/// domain may and may not do.
pub fn dummy_guest(boot: &Boot) -> ! {
    let victim = domid_arg(boot, "victim");
    let eperm = Err(Errno(warden_abi::errno::EPERM));
    let enosys = Err(Errno(warden_abi::errno::ENOSYS));
    check!(
        hc::console_write(b"dummy: console write\n").is_ok(),
        "console write (HOOK)"
    );
    check!(
        hc::xen_version(warden_abi::version::VERSION, 0).is_ok(),
        "xen_version (HOOK)"
    );
    let mut cl = warden_abi::version::CommandLine::default();
    check!(
        hc::xen_version_into(warden_abi::version::COMMANDLINE, &mut cl).is_ok()
            && cl.text.starts_with(b"<denied>\0"),
        "xen_version commandline (PRIV): \"<denied>\", as Xen answers a refused string"
    );
    check!(hc::vcpu_runstate(0).is_ok(), "vcpu_op on itself (HOOK)");
    check!(
        hc::current_reservation(DOMID_SELF).is_ok(),
        "memory stat on itself (TARGET)"
    );
    check!(
        hc::current_reservation(victim) == eperm,
        "memory stat on another domain (TARGET): EPERM"
    );
    check!(
        hc::pausedomain(victim) == eperm,
        "pausedomain (PRIV): EPERM"
    );
    check!(
        hc::getdomaininfo(boot.domid()).err() == Some(Errno(warden_abi::errno::EPERM)),
        "getdomaininfo on itself (XS_PRIV): EPERM"
    );
    check!(
        hc::physinfo().err() == Some(Errno(warden_abi::errno::EPERM)),
        "physinfo (PRIV): EPERM"
    );
    let mut b = [0u8; 8];
    check!(
        hc::console_read(&mut b) == eperm,
        "console read (PRIV): EPERM"
    );
    check!(
        hc::flask_getenforce() == enosys,
        "xsm_op without FLASK: ENOSYS"
    );
    crate::report::finish("dummy-guest")
}

/// dom0 under flask=disabled.
pub fn dummy_dom0(boot: &Boot) -> ! {
    let victim = domid_arg(boot, "victim");
    let g = domid_arg(boot, "guest");
    let r = wait_shutdown(g, 120);
    check!(
        r == Some(SHUTDOWN_POWEROFF),
        "the guest passed its checks (reason {r:?})"
    );
    check!(hc::pausedomain(victim).is_ok(), "dom0 pauses (PRIV)");
    check!(hc::unpausedomain(victim).is_ok(), "dom0 unpauses");
    check!(hc::physinfo().is_ok(), "dom0 physinfo");
    check!(
        hc::getdomaininfo(victim).is_ok_and(|i| i.ssidref == 0),
        "no labels without FLASK"
    );
    check!(
        hc::flask_getenforce() == Err(Errno(warden_abi::errno::ENOSYS)),
        "xsm_op: ENOSYS for dom0 too"
    );
    let text = ring();
    check!(!text.contains("avc:"), "no avc records without FLASK");
    crate::report::finish("dummy-dom0")
}

/// A domU under flask=late: everything is allowed until dom0 loads a policy.
pub fn late_guest(_boot: &Boot) -> ! {
    check!(
        hc::physinfo().is_ok(),
        "physinfo before the policy is loaded: allowed"
    );
    println!("late: phase one done");
    let until = now_ns() + 120_000_000_000;
    let mut denied = false;
    while now_ns() < until {
        if hc::physinfo().err() == Some(Errno(EACCES)) {
            denied = true;
            break;
        }
        sleep_ns(20_000_000);
    }
    check!(denied, "physinfo after the policy load: denied");
    crate::report::finish("late-guest")
}

/// dom0 under flask=late: load the policy once the guest has shown the open door.
pub fn late_dom0(boot: &Boot) -> ! {
    let g = domid_arg(boot, "guest");
    let until = now_ns() + 120_000_000_000;
    while now_ns() < until && !ring().contains("late: phase one done") {
        sleep_ns(20_000_000);
    }
    check!(
        hc::flask_getenforce() == Ok(1),
        "late mode reports enforcing"
    );
    let p = module(boot, "policy");
    check!(hc::flask_load(p).is_ok(), "loadpolicy");
    let r = wait_shutdown(g, 120);
    check!(
        r == Some(SHUTDOWN_POWEROFF),
        "the guest saw the policy take effect (reason {r:?})"
    );
    check!(hc::physinfo().is_ok(), "dom0 still has physinfo");
    crate::report::finish("late-dom0")
}
