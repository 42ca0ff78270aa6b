//! Address-space identifiers (AMD SVM ASIDs; Intel's VPIDs work the same
//! way): the TLB tags every guest translation with the ASID it was made
//! under, so entries of different vCPUs can coexist and a switch between
//! vCPUs needs no flush.
//!
//! Each physical CPU has its own ASID space ([`AsidSpace`]), handed out in
//! order; when it runs out, a new *generation* starts and the whole TLB is
//! flushed once (every ASID of the old generation becomes invalid at once),
//! as Xen (`hvm_asid_handle_vmenter`) and KVM (`new_asid`) do. A vCPU keeps
//! the ASID it was given ([`AsidTag`]) for as long as it stays on the same CPU
//! in the same generation. It gets a fresh one when
//! - it runs on another CPU than last time: the translations its old ASID
//!   holds on the CPU it comes back to may predate guest page-table changes
//!   it made elsewhere (the guest's own flushes reach only the CPU it ran on);
//! - its guest translations must be dropped (the domain's physmap changed)
//!   and the CPU cannot flush a single ASID (no flush-by-ASID): a fresh ASID
//!   has no entries at all. With flush-by-ASID the vCPU keeps its ASID and
//!   that ASID alone is flushed.
//!
//! An ASID is never given to a second vCPU within one generation, so entries
//! left behind by a vCPU that moved, was destroyed or had its physmap changed
//! can never be used: they die with the generation.

/// What the next VMRUN must flush (SVM's TLB_CONTROL values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlbFlush {
    /// Nothing: the vCPU's ASID holds only translations it may use.
    None,
    /// Every ASID on this CPU (a new generation started). TLB_CONTROL 1.
    All,
    /// This guest's ASID only (needs flush-by-ASID). TLB_CONTROL 3.
    Asid,
}

impl TlbFlush {
    /// The VMCB TLB_CONTROL byte.
    pub fn tlb_control(self) -> u8 {
        match self {
            TlbFlush::None => 0,
            TlbFlush::All => 1,
            TlbFlush::Asid => 3,
        }
    }
}

/// One CPU's ASID space. Only that CPU touches it.
#[derive(Debug)]
pub struct AsidSpace {
    /// Highest usable ASID (ASID 0 is the host's).
    max: u32,
    next: u32,
    generation: u64,
    /// Generations started (= full flushes done).
    pub rollovers: u64,
    /// ASIDs handed out.
    pub assigned: u64,
}

/// The ASID a vCPU last ran under, on which CPU, in which generation.
/// `AsidTag::default()` is valid nowhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsidTag {
    pub asid: u32,
    pub cpu: u32,
    /// 0 = never assigned (generations start at 1).
    pub generation: u64,
}

impl AsidSpace {
    /// A space for a CPU that reports `count` ASIDs (CPUID 0x8000_000A EBX;
    /// ASIDs 1..count-1 are the guests'). The first assignment starts
    /// generation 1 with a full flush (the TLB may hold anything before).
    pub const fn new(count: u32) -> AsidSpace {
        let max = if count > 1 { count - 1 } else { 1 };
        AsidSpace {
            max,
            next: max + 1,
            generation: 0,
            rollovers: 0,
            assigned: 0,
        }
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Before entering a vCPU on `cpu` (this space's CPU): the ASID to run it
    /// under and what to flush. `drop_guest_tlb`: the vCPU's translations
    /// must not survive (its physmap changed); `flush_by_asid`: the CPU can
    /// flush one ASID. Updates `tag`.
    pub fn enter(
        &mut self,
        tag: &mut AsidTag,
        cpu: u32,
        drop_guest_tlb: bool,
        flush_by_asid: bool,
    ) -> (u32, TlbFlush) {
        let valid = tag.generation == self.generation && tag.cpu == cpu && tag.asid != 0;
        if valid && !drop_guest_tlb {
            return (tag.asid, TlbFlush::None);
        }
        if valid && flush_by_asid {
            return (tag.asid, TlbFlush::Asid);
        }
        let mut flush = TlbFlush::None;
        if self.next > self.max {
            self.generation += 1;
            self.next = 1;
            self.rollovers += 1;
            flush = TlbFlush::All;
        }
        *tag = AsidTag {
            asid: self.next,
            cpu,
            generation: self.generation,
        };
        self.next += 1;
        self.assigned += 1;
        (tag.asid, flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_entry_flushes_everything_then_vcpus_keep_their_asids() {
        let mut s = AsidSpace::new(16);
        let (mut a, mut b) = (AsidTag::default(), AsidTag::default());
        assert_eq!(s.enter(&mut a, 0, false, false), (1, TlbFlush::All));
        assert_eq!(s.enter(&mut b, 0, false, false), (2, TlbFlush::None));
        // Switching back and forth costs no flush and keeps the ASIDs.
        for _ in 0..100 {
            assert_eq!(s.enter(&mut a, 0, false, false), (1, TlbFlush::None));
            assert_eq!(s.enter(&mut b, 0, false, false), (2, TlbFlush::None));
        }
        assert_eq!((s.rollovers, s.assigned), (1, 2));
    }

    #[test]
    fn running_out_starts_a_new_generation_with_one_full_flush() {
        let mut s = AsidSpace::new(4); // guest ASIDs 1..=3
        let mut v = [AsidTag::default(); 4];
        let got: Vec<_> = v.iter_mut().map(|t| s.enter(t, 0, false, false)).collect();
        assert_eq!(
            got,
            [
                (1, TlbFlush::All),
                (2, TlbFlush::None),
                (3, TlbFlush::None),
                (1, TlbFlush::All)
            ]
        );
        // The fourth vCPU took ASID 1 in generation 2: the first vCPU's tag
        // (ASID 1, generation 1) is stale and never reused as is.
        assert_eq!(s.enter(&mut v[0], 0, false, false), (2, TlbFlush::None));
        assert_eq!(s.enter(&mut v[3], 0, false, false), (1, TlbFlush::None));
        assert_eq!(s.rollovers, 2);
    }

    #[test]
    fn a_vcpu_that_moved_gets_a_fresh_asid_even_when_it_comes_back() {
        let (mut c0, mut c1) = (AsidSpace::new(16), AsidSpace::new(16));
        let mut v = AsidTag::default();
        assert_eq!(c0.enter(&mut v, 0, false, false), (1, TlbFlush::All));
        assert_eq!(c1.enter(&mut v, 1, false, false), (1, TlbFlush::All));
        // Back on CPU 0, same generation: its old ASID 1 there may hold
        // translations older than what it did on CPU 1.
        assert_eq!(c0.enter(&mut v, 0, false, false), (2, TlbFlush::None));
    }

    #[test]
    fn a_physmap_change_drops_the_vcpus_translations() {
        let mut s = AsidSpace::new(16);
        let mut v = AsidTag::default();
        s.enter(&mut v, 0, false, false);
        // Without flush-by-ASID: a fresh ASID (no flush at all).
        assert_eq!(s.enter(&mut v, 0, true, false), (2, TlbFlush::None));
        // With it: same ASID, that ASID flushed.
        assert_eq!(s.enter(&mut v, 0, true, true), (2, TlbFlush::Asid));
        assert_eq!(TlbFlush::Asid.tlb_control(), 3);
        assert_eq!(TlbFlush::All.tlb_control(), 1);
        assert_eq!(TlbFlush::None.tlb_control(), 0);
    }

    #[test]
    fn no_asid_is_shared_within_a_generation() {
        // Random interleaving of 40 vCPUs over 2 CPUs with 8 ASIDs each:
        // on each CPU, the vCPUs whose tags are valid in the current
        // generation hold distinct ASIDs, and a vCPU whose tag went stale
        // always gets a flush or a never-used ASID.
        let mut spaces = [AsidSpace::new(8), AsidSpace::new(8)];
        let mut tags = [AsidTag::default(); 40];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x % 40) as usize;
            let cpu = ((x >> 8) % 2) as u32;
            let drop = (x >> 16).is_multiple_of(50);
            let s = &mut spaces[cpu as usize];
            let (asid, _) = s.enter(&mut tags[v], cpu, drop, false);
            assert!((1..8).contains(&asid));
            let live: Vec<u32> = tags
                .iter()
                .filter(|t| t.cpu == cpu && t.generation == s.generation() && t.asid != 0)
                .map(|t| t.asid)
                .collect();
            let mut sorted = live.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), live.len(), "an ASID shared in one generation");
        }
    }
}
