//! Grant-table scaling: map+unmap rate and copy throughput with 1, 2 and 4
//! concurrent users, Warden's per-entry locking (`LockMode::PerEntry`)
//! against one lock per table (`LockMode::Table`, the grant-table lock
//! XenServer measured as the datapath bottleneck), same code otherwise.
//!
//! * map+unmap, separate mappers: one granter, each thread a mapper domain
//!   of its own mapping and unmapping its own grant (several backends
//!   serving one guest): only the granter's table is shared.
//! * map+unmap, one mapper: the threads are vCPUs of one mapper domain (its
//!   physmap lock, which both modes take, is shared too).
//! * copy: the threads are vCPUs of one domain, each copying 4 KiB from its
//!   own grant of the granter into its own frame (netback's RX path).
//!
//! Host memory is a lock-free simulation (guest-visible words through
//! atomics, page copies through raw pointers), so the only locks are the
//! grant table's and the physmaps'. Run: `cargo bench -p hvcore --bench gnttab`
//! (optionally `-- SECONDS ROUNDS`: per measurement, default 0.4 s, and
//! rounds, default 5, the median reported). Results: BENCHMARKS.md.

use hvcore::domain::{DomSnap, Domain};
use hvcore::p2m::{HostMem, P2m};
use hvcore::xen::gnttab::{self, GrantTable, LockMode, Side};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden_abi::xen::grant_table::*;

const BASE: u64 = 16 << 20;

/// Simulated host memory without a global lock.
struct BenchMem {
    words: Vec<AtomicU64>,
    free: Mutex<Vec<u64>>,
    frames: u64,
}

impl BenchMem {
    fn new(frames: u64) -> BenchMem {
        BenchMem {
            words: (0..frames * 512).map(|_| AtomicU64::new(0)).collect(),
            free: Mutex::new((0..frames).rev().map(|i| BASE + i * 4096).collect()),
            frames,
        }
    }
    fn word(&self, pa: u64) -> &AtomicU64 {
        &self.words[((pa - BASE) / 8) as usize]
    }
    fn ptr(&self, pa: u64, len: usize) -> *mut u8 {
        let off = (pa - BASE) as usize;
        assert!(off + len <= self.words.len() * 8 && (off & 4095) + len <= 4096);
        self.words
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(off)
            .cast_mut()
    }
}

// SAFETY: every access is bounds-checked against the simulated frames
// (`ptr` asserts); the bytes live in atomics (interior mutability), words
// a guest could share are accessed atomically, page copies with raw copies
// (as the hypervisor's `rep movsb`).
unsafe impl HostMem for BenchMem {
    fn alloc_frame(&self) -> Option<u64> {
        let pa = self.free.lock().unwrap().pop()?;
        self.zero_frame(pa);
        Some(pa)
    }
    fn free_frame(&self, pa: u64) {
        self.free.lock().unwrap().push(pa);
    }
    fn read(&self, pa: u64, buf: &mut [u8]) {
        if buf.len() <= 8 && (pa & 7) as usize + buf.len() <= 8 {
            let w = self.word(pa & !7).load(Ordering::Acquire).to_le_bytes();
            let o = (pa & 7) as usize;
            buf.copy_from_slice(&w[o..o + buf.len()]);
            return;
        }
        let p = self.ptr(pa, buf.len());
        // SAFETY: `p..p+len` lies in the simulated memory (checked by `ptr`).
        unsafe { core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
    }
    fn write(&self, pa: u64, buf: &[u8]) {
        if buf.len() <= 8 && (pa & 7) as usize + buf.len() <= 8 {
            let o = (pa & 7) as usize;
            let _ = self
                .word(pa & !7)
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                    let mut b = w.to_le_bytes();
                    b[o..o + buf.len()].copy_from_slice(buf);
                    Some(u64::from_le_bytes(b))
                });
            return;
        }
        let p = self.ptr(pa, buf.len());
        // SAFETY: as in `read`, with the simulated memory as destination.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), p, buf.len()) };
    }
    fn zero_frame(&self, pa: u64) {
        let pa = pa & !4095;
        for i in 0..512 {
            self.word(pa + i * 8).store(0, Ordering::Relaxed);
        }
    }
    fn free_frames(&self) -> u64 {
        self.free.lock().unwrap().len() as u64
    }
    fn total_frames(&self) -> u64 {
        self.frames
    }
    fn max_mfn(&self) -> u64 {
        (BASE >> 12) + self.frames - 1
    }
    fn cmpxchg_u32(&self, pa: u64, old: u32, new: u32) -> u32 {
        let p = self.ptr(pa, 4).cast::<u32>();
        // SAFETY: an aligned word of the simulated memory (the callers pass
        // entry addresses, 8-byte aligned), which lives in atomics.
        let a = unsafe { AtomicU32::from_ptr(p) };
        match a.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(v) | Err(v) => v,
        }
    }
    fn fetch_or_u64(&self, pa: u64, v: u64) -> u64 {
        self.word(pa).fetch_or(v, Ordering::AcqRel)
    }
    fn fetch_and_u64(&self, pa: u64, v: u64) -> u64 {
        self.word(pa).fetch_and(v, Ordering::AcqRel)
    }
}

fn domain(mem: &'static BenchMem, id: u16, pages: u64, mode: LockMode) -> Arc<Domain> {
    let p2m = P2m::new(mem, 256).unwrap();
    let mut d = Domain::new(id, 1, false, String::new(), p2m, 4096);
    d.gnttab = Arc::new(GrantTable::new(id, 4, 64, mode));
    {
        let mut m = d.mem.write();
        let p = m.p2m.as_mut().unwrap();
        for g in 0..pages {
            p.map(mem, g, mem.alloc_frame().unwrap()).unwrap();
        }
    }
    d.gnttab.grow(mem, 1).unwrap();
    Arc::new(d)
}

fn snap(d: &Domain) -> DomSnap {
    DomSnap {
        id: d.id,
        generation: d.generation,
        sid: 0,
        self_sid: 0,
        privileged: false,
    }
}

fn grant(mem: &BenchMem, g: &Domain, gref: u32, to: u16, gfn: u32) {
    g.gnttab.write_entry(
        mem,
        gref,
        &GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS,
            domid: to,
            frame: gfn,
        },
    );
}

/// Run `f(thread, stop)` on `n` threads for `secs`; total operations per second.
fn run(n: usize, secs: f64, f: &(dyn Fn(usize, &AtomicBool) -> u64 + Sync)) -> f64 {
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                s.spawn({
                    let stop = &stop;
                    move || f(i, stop)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / t0.elapsed().as_secs_f64()
}

const MAP_GFN: u64 = 0x1000;

fn map_unmap(
    mem: &'static BenchMem,
    mode: LockMode,
    threads: usize,
    one_mapper: bool,
    secs: f64,
) -> f64 {
    let g = domain(mem, 1, 8, mode);
    let mappers: Vec<_> = if one_mapper {
        vec![domain(mem, 10, 1, mode)]
    } else {
        (0..threads)
            .map(|i| domain(mem, 10 + i as u16, 1, mode))
            .collect()
    };
    for i in 0..threads {
        let m = &mappers[if one_mapper { 0 } else { i }];
        grant(mem, &g, 16 + i as u32 * 8, m.id, 1 + i as u32);
    }
    run(threads, secs, &|i, stop| {
        let m = &mappers[if one_mapper { 0 } else { i }];
        let gref = 16 + i as u32 * 8;
        let gfn = MAP_GFN + i as u64;
        let op = MapGrantRef {
            host_addr: gfn << 12,
            flags: GNTMAP_HOST_MAP,
            ref_: gref,
            dom: 1,
            ..Default::default()
        };
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let h = gnttab::map(mem, m, i as u32, &g, snap(&g), &op).unwrap();
            let u = UnmapGrantRef {
                host_addr: gfn << 12,
                handle: h,
                ..Default::default()
            };
            gnttab::unmap(mem, m, i as u32, &u, 1, &|| {}).unwrap();
            n += 1;
        }
        n
    })
}

fn copy_mbps(mem: &'static BenchMem, mode: LockMode, threads: usize, secs: f64) -> f64 {
    let g = domain(mem, 1, 8, mode);
    let c = domain(mem, 10, 8, mode);
    for i in 0..threads {
        grant(mem, &g, 16 + i as u32 * 8, c.id, 1 + i as u32);
    }
    let ops = run(threads, secs, &|i, stop| {
        let gref = 16 + i as u32 * 8;
        let op = Copy {
            len: 4096,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        };
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            gnttab::copy(mem, &c, Side::Gref(&g, gref), Side::Gmfn(1 + i as u64), &op).unwrap();
            n += 1;
        }
        n
    });
    ops * 4096.0 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // Arguments: SECONDS per measurement (default 0.4), ROUNDS (default 5).
    let nums: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let secs = nums.first().copied().unwrap_or(0.4);
    let rounds = nums.get(1).map_or(5, |&r| r as usize).max(1);
    let mem: &'static BenchMem = Box::leak(Box::new(BenchMem::new(1 << 15)));
    println!(
        "grant tables: {secs} s per measurement, median of {rounds} rounds (the two modes alternate), {} CPUs online",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| measure | threads | per-entry locks | one table lock | ratio |");
    println!("|---|---|---|---|---|");
    type Measure<'a> = &'a dyn Fn(LockMode, usize) -> f64;
    let measures: [(&str, Measure<'_>); 3] = [
        ("map+unmap/s, a mapper domain per thread", &|m, t| {
            map_unmap(mem, m, t, false, secs)
        }),
        (
            "map+unmap/s, one mapper domain (vCPU per thread)",
            &|m, t| map_unmap(mem, m, t, true, secs),
        ),
        ("copy 4 KiB grant -> own frame, MB/s", &|m, t| {
            copy_mbps(mem, m, t, secs)
        }),
    ];
    for (name, f) in measures {
        for t in [1usize, 2, 4] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                a.push(f(LockMode::PerEntry, t));
                b.push(f(LockMode::Table, t));
            }
            let (a, b) = (median(a), median(b));
            println!("| {name} | {t} | {a:.0} | {b:.0} | {:.2} |", a / b);
        }
    }
}
