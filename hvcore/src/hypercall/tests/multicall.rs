//! multicall (hypercall 13) as Xen 4.17's `do_multicall` for a 64-bit HVM
//! caller: libxc issues every `xc_memory_op` (the toolstack's memory_op:
//! sharing counters for `xl info`, claim/populate/set_memory_map for `xl
//! create`) as a one-entry multicall from dom0 user space.

use super::*;
use warden_abi::hypercall as hc;
use warden_abi::memory;
use warden_abi::version;
use warden_abi::xen::grant_table as gt;
use warden_abi::xen::xen::multicall::MulticallEntry;

const DOM0: &str = "system_u:system_r:dom0_t";
/// Where the tests put the entries (after ARG and BUF).
const LIST: u64 = 0x4000;
const SIZE: u64 = core::mem::size_of::<MulticallEntry>() as u64;

fn entry(op: u32, args: [u64; 5]) -> MulticallEntry {
    MulticallEntry {
        op: op as u64,
        // Xen never reads it: a stale value must be overwritten.
        result: 0xdead_beef,
        args: [args[0], args[1], args[2], args[3], args[4], 0],
    }
}

fn put_list(w: &World, d: &Domain, list: &[MulticallEntry]) {
    for (i, e) in list.iter().enumerate() {
        w.put(d, LIST + i as u64 * SIZE, e);
    }
}

fn got(w: &World, d: &Domain, i: u64) -> MulticallEntry {
    w.get(d, LIST + i * SIZE)
}

fn neg(e: i32) -> u64 {
    (-(e as i64)) as u64
}

#[test]
fn each_entry_runs_as_its_hypercall_and_gets_its_result() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let list = [
        entry(
            hc::MEMORY_OP,
            [memory::GET_SHARING_FREED_PAGES as u64, 0, 0, 0, 0],
        ),
        entry(hc::XEN_VERSION, [version::VERSION as u64, 0, 0, 0, 0]),
        entry(99, [0; 5]),
        entry(
            hc::MEMORY_OP,
            [memory::GET_SHARING_SHARED_PAGES as u64, 0, 0, 0, 0],
        ),
    ];
    put_list(&w, &d0, &list);
    assert_eq!(w.call(&d0, hc::MULTICALL, [LIST, 4, 0, 0, 0]), 0);
    let results: Vec<u64> = (0..4).map(|i| got(&w, &d0, i).result).collect();
    assert_eq!(
        results,
        [
            0,
            (version::MAJOR as u64) << 16 | version::MINOR as u64,
            neg(errno::ENOSYS),
            0
        ]
    );
    // Only the result fields were written.
    for (i, e) in list.iter().enumerate() {
        let g = got(&w, &d0, i as u64);
        assert_eq!((g.op, g.args), (e.op, e.args));
    }
    // The count is Xen's uint32_t: the upper half of the argument is ignored.
    put_list(&w, &d0, &list[..1]);
    assert_eq!(w.call(&d0, hc::MULTICALL, [LIST, 1 << 32, 0, 0, 0]), 0);
    assert_eq!(got(&w, &d0, 0).result, 0xdead_beef, "no entry ran");
    assert!(w.audit_lines().is_empty());
}

#[test]
fn an_entry_the_policy_refuses_is_refused_as_a_hypercall_and_changes_nothing() {
    let w = world(true);
    let _d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let _d2 = w.domain(2, DOMU);
    // d1 pauses d2 (refused: domU_t may not), then asks for the version.
    w.put(&d1, ARG, &dc::Domctl::new(dc::PAUSEDOMAIN, 2, &()));
    put_list(
        &w,
        &d1,
        &[
            entry(hc::DOMCTL, [ARG, 0, 0, 0, 0]),
            entry(hc::XEN_VERSION, [version::VERSION as u64, 0, 0, 0, 0]),
        ],
    );
    assert_eq!(w.call(&d1, hc::MULTICALL, [LIST, 2, 0, 0, 0]), 0);
    assert_eq!(got(&w, &d1, 0).result, neg(errno::EACCES));
    assert_eq!(got(&w, &d1, 1).result >> 16, version::MAJOR as u64);
    assert_eq!(w.hv.sched.domain_state(2, 0).unwrap().pause, 0, "d2 runs");
    let a = w.audit_lines();
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(
        a[0].contains("denied  { pause } for source=d1 target=d2"),
        "{}",
        a[0]
    );
}

#[test]
fn the_multicall_itself_needs_its_permission() {
    // unlabeled_t has no permission at all: the batch is refused as a whole
    // (domain2:vcpu_op on itself) and no entry runs.
    let w = world(true);
    let _d0 = w.domain(0, DOM0);
    let m = w.domain(1, "system_u:system_r:unlabeled_t");
    put_list(
        &w,
        &m,
        &[entry(
            hc::XEN_VERSION,
            [version::VERSION as u64, 0, 0, 0, 0],
        )],
    );
    assert_eq!(
        w.call(&m, hc::MULTICALL, [LIST, 1, 0, 0, 0]),
        -(errno::EACCES as i64)
    );
    assert_eq!(got(&w, &m, 0).result, 0xdead_beef);
    let a = w.audit_lines();
    assert!(
        a.iter()
            .any(|l| l.contains("{ vcpu_op }") && l.contains("tclass=domain2")),
        "{a:?}"
    );
}

#[test]
fn a_multicall_inside_a_multicall_is_einval_and_bad_lists_are_efault() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    put_list(
        &w,
        &d0,
        &[
            entry(hc::MULTICALL, [LIST, 1, 0, 0, 0]),
            entry(hc::XEN_VERSION, [version::VERSION as u64, 0, 0, 0, 0]),
        ],
    );
    assert_eq!(w.call(&d0, hc::MULTICALL, [LIST, 2, 0, 0, 0]), 0);
    assert_eq!(got(&w, &d0, 0).result, neg(errno::EINVAL));
    assert_eq!(got(&w, &d0, 1).result >> 16, version::MAJOR as u64);
    let efault = -(errno::EFAULT as i64);
    // A list outside the caller's memory, or wrapping the address space.
    assert_eq!(
        w.call(&d0, hc::MULTICALL, [PAGES * 4096, 1, 0, 0, 0]),
        efault
    );
    assert_eq!(
        w.call(&d0, hc::MULTICALL, [u64::MAX - 8, 1, 0, 0, 0]),
        efault
    );
    // The entries before a bad one ran and have their results.
    let last = PAGES * 4096 - SIZE;
    w.put(
        &d0,
        last,
        &entry(hc::XEN_VERSION, [version::VERSION as u64, 0, 0, 0, 0]),
    );
    assert_eq!(w.call(&d0, hc::MULTICALL, [last, 2, 0, 0, 0]), efault);
    assert_eq!(
        w.get::<MulticallEntry>(&d0, last).result >> 16,
        version::MAJOR as u64
    );
    // An empty list does nothing and reads nothing.
    assert_eq!(w.call(&d0, hc::MULTICALL, [u64::MAX, 0, 0, 0, 0]), 0);
}

#[test]
fn a_long_batch_continues_itself_from_the_next_entry() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let n = MULTICALL_ENTRIES_PER_CALL as u64 + 3;
    let list: Vec<_> = (0..n)
        .map(|_| entry(hc::XEN_VERSION, [version::VERSION as u64, 0, 0, 0, 0]))
        .collect();
    put_list(&w, &d0, &list);
    CONTINUED.with(|c| c.set(None));
    w.call(&d0, hc::MULTICALL, [LIST, n, 0, 0, 0]);
    let next = CONTINUED
        .with(|c| c.take())
        .expect("the multicall continued");
    let k = MULTICALL_ENTRIES_PER_CALL as u64;
    assert_eq!(next.nr, hc::MULTICALL as u64);
    assert_eq!(next.a[..2], [LIST + k * SIZE, n - k]);
    assert!((0..k).all(|i| got(&w, &d0, i).result >> 16 == version::MAJOR as u64));
    assert!((k..n).all(|i| got(&w, &d0, i).result == 0xdead_beef));
    // The guest executes it again with those arguments: the rest runs.
    assert_eq!(w.call(&d0, hc::MULTICALL, next.a), 0);
    assert!((0..n).all(|i| got(&w, &d0, i).result >> 16 == version::MAJOR as u64));
}

#[test]
fn an_entry_that_continues_is_written_back_and_the_multicall_resumes_at_it() {
    // A grant copy batch longer than GNTTAB_OPS_PER_CALL continues itself;
    // inside a multicall its new arguments go into the entry (Xen's
    // hypercall_create_continuation with MCSF_in_multicall), and the
    // multicall continues from that entry.
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let count = super::super::grant_table::GNTTAB_OPS_PER_CALL as u64 + 2;
    let copy = gt::Copy {
        source: gt::CopyPtr {
            u: 5,
            domid: warden_abi::DOMID_SELF,
            ..Default::default()
        },
        dest: gt::CopyPtr {
            u: 6,
            domid: warden_abi::DOMID_SELF,
            ..Default::default()
        },
        len: 8,
        ..Default::default()
    };
    let csize = core::mem::size_of::<gt::Copy>() as u64;
    const COPIES: u64 = 0x8000;
    for i in 0..count {
        w.put(&d0, COPIES + i * csize, &copy);
    }
    let first = entry(hc::XEN_VERSION, [version::VERSION as u64, 0, 0, 0, 0]);
    let copies = entry(hc::GRANT_TABLE_OP, [gt::COPY as u64, COPIES, count, 0, 0]);
    put_list(&w, &d0, &[first, copies, first]);
    CONTINUED.with(|c| c.set(None));
    w.call(&d0, hc::MULTICALL, [LIST, 3, 0, 0, 0]);
    let next = CONTINUED
        .with(|c| c.take())
        .expect("the multicall continued");
    assert_eq!(next.a[..2], [LIST + SIZE, 2], "from the copy entry on");
    let e = got(&w, &d0, 1);
    let done = super::super::grant_table::GNTTAB_OPS_PER_CALL as u64;
    assert_eq!(
        e.args[..3],
        [gt::COPY as u64, COPIES + done * csize, count - done],
        "the copy's continuation is in its entry"
    );
    assert_eq!(e.result, 0xdead_beef, "not finished: no result yet");
    assert_eq!(got(&w, &d0, 2).result, 0xdead_beef);
    assert_eq!(w.call(&d0, hc::MULTICALL, next.a), 0);
    assert_eq!(got(&w, &d0, 1).result, 0);
    assert_eq!(got(&w, &d0, 2).result >> 16, version::MAJOR as u64);
    for i in 0..count {
        let c: gt::Copy = w.get(&d0, COPIES + i * csize);
        assert_eq!(c.status, gt::GNTST_OKAY, "copy {i}");
    }
}

#[test]
fn an_entry_that_relabels_the_caller_has_the_next_entries_checked_with_the_new_label() {
    // A domU confines itself to isolated_domU_t in the first entry; the
    // second, an event channel towards another domU (which domU_t may
    // open, isolated_domU_t not), must be checked with the new label, as
    // Xen reads the caller's label at every check.
    use warden_abi::xen::event_channel as ec;
    let w = world(true);
    let _d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let _d2 = w.domain(2, DOMU);
    let unbound = ec::AllocUnbound {
        dom: warden_abi::DOMID_SELF,
        remote_dom: 2,
        port: 0,
    };
    // As domU_t, allowed.
    w.put(&d1, BUF, &unbound);
    assert_eq!(
        w.call(
            &d1,
            hc::EVENT_CHANNEL_OP,
            [ec::ALLOC_UNBOUND as u64, BUF, 0, 0, 0]
        ),
        0
    );
    let isolated = w.sid("user_1:vm_r:isolated_domU_t");
    w.put(
        &d1,
        ARG,
        &fx::FlaskOp::new(
            fx::RELABEL_DOMAIN,
            &fx::Relabel {
                domid: warden_abi::DOMID_SELF as u32,
                sid: isolated,
            },
        ),
    );
    w.put(&d1, BUF, &unbound);
    put_list(
        &w,
        &d1,
        &[
            entry(hc::XSM_OP, [ARG, 0, 0, 0, 0]),
            entry(
                hc::EVENT_CHANNEL_OP,
                [ec::ALLOC_UNBOUND as u64, BUF, 0, 0, 0],
            ),
        ],
    );
    w.audit_lines();
    assert_eq!(w.call(&d1, hc::MULTICALL, [LIST, 2, 0, 0, 0]), 0);
    assert_eq!(got(&w, &d1, 0).result, 0, "relabelled");
    assert_eq!(w.hv.domains.snapshot(1).unwrap().sid, isolated);
    assert_eq!(
        got(&w, &d1, 1).result,
        neg(errno::EACCES),
        "checked as isolated_domU_t"
    );
    let a = w.audit_lines();
    assert!(
        a.iter()
            .any(|l| l.contains("isolated_domU_t") && l.contains("denied")),
        "{a:?}"
    );
}
