//! CPU policies as Xen 4.17's toolstack sees them (`sysctl get_cpu_policy`,
//! `get_cpu_featureset`, `domctl get/set_cpu_policy`; Xen's
//! `xen/lib/x86/cpuid.c`, `msr.c`, `policy.c`).
//!
//! Warden has one policy for every guest: what [`guestcpu::cpuid`] shows a
//! PVH guest (the host's CPUID with what Warden does not virtualise
//! hidden). The HVM policies (`hvm_max`, `hvm_default`) and every domain's
//! policy are that view, serialised as Xen serialises a `struct
//! cpu_policy` (`x86_cpuid_copy_to_buffer`): the basic leaves up to 0xd
//! (leaf 4 up to its first null subleaf, leaf 7 up to its max subleaf, leaf
//! 0xb up to its first null level, leaf 0xd's subleaves 0 and 1 and one per
//! enabled xstate), the two hypervisor limits (0: Xen's default), the
//! extended leaves up to 0x80000021. The raw and host policies are the
//! host's CPUID unfiltered; there are no PV policies (as a Xen built
//! without PV: `-EOPNOTSUPP`).
//!
//! A toolstack's `set_cpu_policy` is checked as Xen checks it (the leaves
//! and MSRs parsed as `x86_cpuid_copy_from_buffer` / `x86_msr_copy_from_buffer`
//! parse them, then `x86_cpu_policies_are_compatible` against the maximum
//! policy: the max basic leaf, leaf 7's max subleaf, the max extended leaf,
//! MSR_PLATFORM_INFO), and a compatible one is accepted; the guest keeps
//! seeing Warden's view (Warden does not level features per domain: a
//! feature the toolstack turns off stays visible, one it turns on that
//! Warden hides stays hidden, as Xen's recalculation masks it).
//!
//! [`guestcpu::cpuid`]: crate::guestcpu::cpuid

use alloc::vec::Vec;
use warden_abi::errno;
use warden_abi::sysctl::{
    CPUID_MAX_SERIALISED_LEAVES, CPUID_NO_SUBLEAF, CpuidLeaf, FSCAPINTS,
    MSR_MAX_SERIALISED_ENTRIES, MsrEntry,
};

/// CPUID registers (EAX, EBX, ECX, EDX).
pub type Regs = (u32, u32, u32, u32);

/// Basic leaves a policy holds (`CPUID_GUEST_NR_BASIC`).
const NR_BASIC: u32 = 0xd + 1;
/// Leaf 4 subleaves (`CPUID_GUEST_NR_CACHE`).
const NR_CACHE: u32 = 5 + 1;
/// Leaf 7 subleaves (`CPUID_GUEST_NR_FEAT`).
const NR_FEAT: u32 = 2 + 1;
/// Leaf 0xb subleaves (`CPUID_GUEST_NR_TOPO`).
const NR_TOPO: u32 = 1 + 1;
/// Leaf 0xd subleaves (`CPUID_GUEST_NR_XSTATE`).
const NR_XSTATE: u32 = 62 + 1;
/// Extended leaves (`CPUID_GUEST_NR_EXTD`, AMD's being the larger).
const NR_EXTD: u32 = 0x21 + 1;

/// MSR_INTEL_PLATFORM_INFO.
pub const MSR_PLATFORM_INFO: u32 = 0xce;
/// MSR_ARCH_CAPABILITIES.
pub const MSR_ARCH_CAPABILITIES: u32 = 0x10a;

/// Which view a policy is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The host's CPUID as it is (Xen's raw and host policies).
    Host,
    /// What a guest sees (Xen's HVM maximum and default policies, and every
    /// domain's policy).
    Guest,
}

/// The CPUID answer of `view` for (`leaf`, `sub`), from the host's.
fn answer(host: &dyn Fn(u32, u32) -> Regs, view: View, leaf: u32, sub: u32) -> Regs {
    let h = host(leaf, sub);
    match view {
        View::Host => h,
        View::Guest => crate::guestcpu::cpuid(leaf, sub, h, crate::guestcpu::Asker::default()),
    }
}

fn leaf(l: u32, s: u32, r: Regs) -> CpuidLeaf {
    CpuidLeaf {
        leaf: l,
        subleaf: s,
        a: r.0,
        b: r.1,
        c: r.2,
        d: r.3,
    }
}

/// The policy `view`, serialised in Xen's order (`x86_cpuid_copy_to_buffer`).
pub fn serialise(host: &dyn Fn(u32, u32) -> Regs, view: View) -> Vec<CpuidLeaf> {
    let get = |l: u32, s: u32| answer(host, view, l, s);
    let mut out = Vec::new();
    let max_basic = get(0, 0).0;
    for l in 0..=max_basic.min(NR_BASIC - 1) {
        match l {
            4 => {
                for s in 0..NR_CACHE {
                    let r = get(4, s);
                    out.push(leaf(4, s, r));
                    // The cache type (EAX[4:0]) 0 ends the list.
                    if r.0 & 0x1f == 0 {
                        break;
                    }
                }
            }
            7 => {
                let max_sub = get(7, 0).0;
                for s in 0..=max_sub.min(NR_FEAT - 1) {
                    out.push(leaf(7, s, get(7, s)));
                }
            }
            0xb => {
                for s in 0..NR_TOPO {
                    let r = get(0xb, s);
                    out.push(leaf(0xb, s, r));
                    // The level type (ECX[15:8]) 0 ends the list.
                    if (r.2 >> 8) & 0xff == 0 {
                        break;
                    }
                }
            }
            0xd => {
                let r0 = get(0xd, 0);
                let r1 = get(0xd, 1);
                out.push(leaf(0xd, 0, r0));
                out.push(leaf(0xd, 1, r1));
                // XCR0 (0.EAX/EDX) and XSS (1.ECX/EDX) components from 2 on.
                let mut xstates = (u64::from(r0.0) | (u64::from(r0.3) << 32))
                    | (u64::from(r1.2) | (u64::from(r1.3) << 32));
                xstates >>= 2;
                let mut s = 2;
                while xstates != 0 && s < NR_XSTATE {
                    out.push(leaf(0xd, s, get(0xd, s)));
                    xstates >>= 1;
                    s += 1;
                }
            }
            _ => out.push(leaf(l, CPUID_NO_SUBLEAF, get(l, 0))),
        }
    }
    // The hypervisor leaves' limits: 0, Xen's default number of leaves.
    out.push(leaf(0x4000_0000, CPUID_NO_SUBLEAF, (0, 0, 0, 0)));
    out.push(leaf(0x4000_0100, CPUID_NO_SUBLEAF, (0, 0, 0, 0)));
    let max_extd = get(0x8000_0000, 0).0;
    if max_extd & 0xffff_0000 == 0x8000_0000 {
        for l in 0..=(max_extd & 0xffff).min(NR_EXTD - 1) {
            out.push(leaf(
                0x8000_0000 | l,
                CPUID_NO_SUBLEAF,
                get(0x8000_0000 | l, 0),
            ));
        }
    } else {
        // No extended leaves: Xen still lists 0x80000000 (max leaf 0).
        out.push(leaf(0x8000_0000, CPUID_NO_SUBLEAF, (0, 0, 0, 0)));
    }
    out
}

/// The policy's MSRs (`x86_msr_copy_to_buffer`): PLATFORM_INFO and
/// ARCH_CAPABILITIES, both 0 (a guest of Warden has neither).
pub fn msrs() -> [MsrEntry; 2] {
    [
        MsrEntry {
            idx: MSR_PLATFORM_INFO,
            flags: 0,
            val: 0,
        },
        MsrEntry {
            idx: MSR_ARCH_CAPABILITIES,
            flags: 0,
            val: 0,
        },
    ]
}

/// The featureset of `view` (`x86_cpu_policy_to_featureset`): the feature
/// words in Xen's order (`FEATURESET_*`).
pub fn featureset(host: &dyn Fn(u32, u32) -> Regs, view: View) -> [u32; FSCAPINTS as usize] {
    let get = |l: u32, s: u32| answer(host, view, l, s);
    let max_basic = get(0, 0).0;
    let max_extd = get(0x8000_0000, 0).0;
    let basic = |l: u32, s: u32| {
        if l <= max_basic {
            get(l, s)
        } else {
            (0, 0, 0, 0)
        }
    };
    let extd = |l: u32| {
        if max_extd & 0xffff_0000 == 0x8000_0000 && l <= max_extd {
            get(l, 0)
        } else {
            (0, 0, 0, 0)
        }
    };
    let max7 = basic(7, 0).0;
    let sub7 = |s: u32| if s <= max7 { basic(7, s) } else { (0, 0, 0, 0) };
    let (l1, e1, d1, e7, e8, e21) = (
        basic(1, 0),
        extd(0x8000_0001),
        basic(0xd, 1),
        extd(0x8000_0007),
        extd(0x8000_0008),
        extd(0x8000_0021),
    );
    let (f0, f1, f2) = (sub7(0), sub7(1), sub7(2));
    [
        l1.3,  // 1d
        l1.2,  // 1c
        e1.3,  // e1d
        e1.2,  // e1c
        d1.0,  // Da1
        f0.1,  // 7b0
        f0.2,  // 7c0
        e7.3,  // e7d
        e8.1,  // e8b
        f0.3,  // 7d0
        f1.0,  // 7a1
        e21.0, // e21a
        f1.1,  // 7b1
        f2.3,  // 7d2
        f1.2,  // 7c1
        f1.3,  // 7d1
        0,     // m10Al: ARCH_CAPABILITIES (none)
        0,     // m10Ah
        e21.2, // e21c
    ]
}

/// Why a toolstack's policy was refused: the errno and the leaf, subleaf
/// and MSR objected to (`!0` where none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub errno: i32,
    pub err_leaf: u32,
    pub err_subleaf: u32,
    pub err_msr: u32,
}

impl Refusal {
    fn new(errno: i32) -> Refusal {
        Refusal {
            errno,
            err_leaf: !0,
            err_subleaf: !0,
            err_msr: !0,
        }
    }
}

/// The limits the compatibility check compares (Xen's `basic.max_leaf`,
/// `feat.max_subleaf`, `extd.max_leaf`, `platform_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    basic: u32,
    feat: u32,
    extd: u32,
    platform_info: u64,
}

fn limits(policy: &[CpuidLeaf]) -> Limits {
    let find = |l: u32, s: u32| policy.iter().find(|e| e.leaf == l && e.subleaf == s);
    Limits {
        basic: find(0, CPUID_NO_SUBLEAF).map_or(0, |e| e.a),
        feat: find(7, 0).map_or(0, |e| e.a),
        extd: find(0x8000_0000, CPUID_NO_SUBLEAF).map_or(0, |e| e.a),
        platform_info: 0,
    }
}

/// Xen's `update_domain_cpu_policy` checks of a toolstack's `leaves` and
/// `msrs` merged into the domain's policy `ours` (Warden's).
pub fn check(ours: &[CpuidLeaf], leaves: &[CpuidLeaf], msrs: &[MsrEntry]) -> Result<(), Refusal> {
    let max = limits(ours);
    let mut new = max;
    // x86_cpuid_copy_from_buffer
    if leaves.len() > CPUID_MAX_SERIALISED_LEAVES as usize {
        return Err(Refusal::new(errno::E2BIG));
    }
    for l in leaves {
        let ok = match l.leaf {
            0..=0xd => match l.leaf {
                4 => l.subleaf < NR_CACHE,
                7 => l.subleaf < NR_FEAT,
                0xb => l.subleaf < NR_TOPO,
                0xd => l.subleaf < NR_XSTATE,
                _ => l.subleaf == CPUID_NO_SUBLEAF,
            },
            0x4000_0000 | 0x4000_0100 => l.subleaf == CPUID_NO_SUBLEAF,
            x if (0x8000_0000..0x8000_0000 + NR_EXTD).contains(&x) => l.subleaf == CPUID_NO_SUBLEAF,
            _ => false,
        };
        if !ok {
            return Err(Refusal {
                err_leaf: l.leaf,
                err_subleaf: l.subleaf,
                ..Refusal::new(errno::ERANGE)
            });
        }
        match (l.leaf, l.subleaf) {
            (0, _) => new.basic = l.a,
            (7, 0) => new.feat = l.a,
            (0x8000_0000, _) => new.extd = l.a,
            _ => {}
        }
    }
    // x86_msr_copy_from_buffer
    if msrs.len() > MSR_MAX_SERIALISED_ENTRIES as usize {
        return Err(Refusal::new(errno::E2BIG));
    }
    for m in msrs {
        let msr = |e| Refusal {
            err_msr: m.idx,
            ..Refusal::new(e)
        };
        if m.flags != 0 {
            return Err(msr(errno::EINVAL));
        }
        match m.idx {
            // A 32-bit field in Xen's policy.
            MSR_PLATFORM_INFO if m.val > u64::from(u32::MAX) => {
                return Err(msr(errno::EOVERFLOW));
            }
            MSR_PLATFORM_INFO => new.platform_info = m.val,
            MSR_ARCH_CAPABILITIES => {}
            _ => return Err(msr(errno::ERANGE)),
        }
    }
    // x86_cpu_policies_are_compatible
    let cpuid = |l, s| Refusal {
        err_leaf: l,
        err_subleaf: s,
        ..Refusal::new(errno::EINVAL)
    };
    if new.basic > max.basic {
        return Err(cpuid(0, CPUID_NO_SUBLEAF));
    }
    if new.feat > max.feat {
        return Err(cpuid(7, 0));
    }
    if new.extd > max.extd {
        return Err(cpuid(0x8000_0000, CPUID_NO_SUBLEAF));
    }
    if new.platform_info & !max.platform_info != 0 {
        return Err(Refusal {
            err_msr: MSR_PLATFORM_INFO,
            ..Refusal::new(errno::EINVAL)
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small AMD-like host: max basic leaf 0xd, extended 0x80000008.
    pub(crate) fn host(l: u32, s: u32) -> Regs {
        match (l, s) {
            (0, _) => (0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
            (1, _) => (0x00a2_0f10, 0x0002_0800, 0x7ef8_3203, 0x178b_fbff),
            (4, 0) => (0x121, 0x1c0_003f, 0x3f, 0),
            (4, 1) => (0x122, 0x1c0_003f, 0x3f, 0),
            (4, _) => (0, 0, 0, 0),
            (7, 0) => (0, 0x219c_91a9, 0x0040_0684, 0x10),
            (0xb, 0) => (1, 2, 0x100, 0),
            (0xb, _) => (0, 0, s, 0),
            (0xd, 0) => (0x207, 0x980, 0x988, 0),
            (0xd, 1) => (0xf, 0x340, 0, 0),
            (0x8000_0000, _) => (0x8000_0008, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
            (0x8000_0001, _) => (0x00a2_0f10, 0, 0x75c2_37ff, 0x2fd3_fbff),
            (0x8000_0008, _) => (0x3030, 0x791e_f257, 0x5007, 0),
            _ => (0, 0, 0, 0),
        }
    }

    #[test]
    fn the_guest_policy_is_what_guests_see_in_xens_order() {
        let p = serialise(&host, View::Guest);
        let keys: Vec<(u32, u32)> = p.iter().map(|l| (l.leaf, l.subleaf)).collect();
        let n = CPUID_NO_SUBLEAF;
        let mut want = alloc::vec![(0, n), (1, n), (2, n), (3, n), (4, 0), (4, 1), (4, 2)];
        want.extend([
            (5, n),
            (6, n),
            (7, 0),
            (8, n),
            (9, n),
            (0xa, n),
            (0xb, 0),
            (0xb, 1),
        ]);
        // Warden hides XSAVE: leaf 0xd is zero, so subleaves 0 and 1 only.
        want.extend([
            (0xc, n),
            (0xd, 0),
            (0xd, 1),
            (0x4000_0000, n),
            (0x4000_0100, n),
        ]);
        want.extend((0..=8).map(|l| (0x8000_0000 + l, n)));
        assert_eq!(keys, want);
        assert!(p.len() <= CPUID_MAX_SERIALISED_LEAVES as usize);
        // Every entry is guestcpu's answer.
        for l in &p {
            if l.leaf >> 16 == 0x4000 {
                continue;
            }
            let s = if l.subleaf == n { 0 } else { l.subleaf };
            let g = crate::guestcpu::cpuid(l.leaf, s, host(l.leaf, s), Default::default());
            assert_eq!(
                (l.a, l.b, l.c, l.d),
                g,
                "leaf {:#x}/{:#x}",
                l.leaf,
                l.subleaf
            );
        }
        let host_p = serialise(&host, View::Host);
        let xsave = |p: &[CpuidLeaf]| p.iter().find(|l| l.leaf == 1).map(|l| l.c & (1 << 26));
        assert_eq!(xsave(&host_p), Some(1 << 26), "the host has XSAVE");
        assert_eq!(xsave(&p), Some(0), "the guest does not");
        // The host policy lists leaf 0xd's xstate subleaves (x87, SSE, AVX, ...).
        assert!(host_p.iter().any(|l| l.leaf == 0xd && l.subleaf == 2));
    }

    #[test]
    fn the_featureset_has_xens_words() {
        let f = featureset(&host, View::Guest);
        let g1 = crate::guestcpu::cpuid(1, 0, host(1, 0), Default::default());
        assert_eq!((f[0], f[1]), (g1.3, g1.2));
        assert_eq!(f[1] & (1 << 31), 1 << 31, "the hypervisor bit");
        let h = featureset(&host, View::Host);
        assert_eq!(h[1] & (1 << 31), 0);
        assert_eq!(h[8], 0x791e_f257, "e8b");
        assert_eq!(h[11], 0, "no leaf 0x80000021 on this host");
    }

    #[test]
    fn set_policy_checks_as_xen_4_17() {
        let ours = serialise(&host, View::Guest);
        // libxc's round trip (with its HVM topology fix-ups) is accepted.
        let mut theirs = ours.clone();
        theirs[1].b |= 2 << 16;
        theirs[1].d |= 1 << 28;
        assert_eq!(check(&ours, &theirs, &[]), Ok(()));
        assert_eq!(check(&ours, &theirs, &msrs()), Ok(()));
        // Fewer leaves, fewer features: compatible.
        assert_eq!(check(&ours, &theirs[..3], &[]), Ok(()));
        let r = |l: &[CpuidLeaf], m: &[MsrEntry]| check(&ours, l, m).unwrap_err();
        let n = CPUID_NO_SUBLEAF;
        let mut more = theirs.clone();
        more[0].a = 0x20;
        let e = r(&more, &[]);
        assert_eq!((e.errno, e.err_leaf, e.err_subleaf), (errno::EINVAL, 0, n));
        let mut sub = theirs.clone();
        sub.push(leaf(7, 0, (1, 0, 0, 0)));
        assert_eq!(r(&sub, &[]).err_leaf, 7);
        let mut ext = theirs.clone();
        ext.push(leaf(0x8000_0000, n, (0x8000_0021, 0, 0, 0)));
        assert_eq!(r(&ext, &[]).err_leaf, 0x8000_0000);
        // Parsing: leaves out of range, too many, MSR rules.
        let e = r(&[leaf(0x14, n, (0, 0, 0, 0))], &[]);
        assert_eq!((e.errno, e.err_leaf), (errno::ERANGE, 0x14));
        let e = r(&[leaf(1, 0, (0, 0, 0, 0))], &[]);
        assert_eq!((e.errno, e.err_leaf, e.err_subleaf), (errno::ERANGE, 1, 0));
        let e = r(&[leaf(4, 6, (0, 0, 0, 0))], &[]);
        assert_eq!((e.errno, e.err_subleaf), (errno::ERANGE, 6));
        let e = r(&[leaf(0x4000_0001, n, (0, 0, 0, 0))], &[]);
        assert_eq!(e.errno, errno::ERANGE);
        let big = alloc::vec![leaf(1, n, (0, 0, 0, 0)); CPUID_MAX_SERIALISED_LEAVES as usize + 1];
        assert_eq!(r(&big, &[]), Refusal::new(errno::E2BIG));
        let m = |idx, flags, val| MsrEntry { idx, flags, val };
        let e = r(&[], &[m(MSR_PLATFORM_INFO, 1, 0)]);
        assert_eq!((e.errno, e.err_msr), (errno::EINVAL, MSR_PLATFORM_INFO));
        let e = r(&[], &[m(0x10, 0, 0)]);
        assert_eq!((e.errno, e.err_msr), (errno::ERANGE, 0x10));
        let e = r(&[], &[m(MSR_PLATFORM_INFO, 0, 1 << 32)]);
        assert_eq!(e.errno, errno::EOVERFLOW);
        let e = r(&[], &[m(MSR_PLATFORM_INFO, 0, 1)]);
        assert_eq!((e.errno, e.err_msr), (errno::EINVAL, MSR_PLATFORM_INFO));
        let three = [m(MSR_ARCH_CAPABILITIES, 0, 0); 3];
        assert_eq!(r(&[], &three), Refusal::new(errno::E2BIG));
    }
}
