//! Issue 11 §1: what Linux calls as a PVH dom0 that it does not call as a
//! domU, through the dispatcher as Xen 4.17 answers it: platform_op
//! (settime, firmware_info, get_cpuinfo, commands Warden lacks or Xen's
//! hook does not know), console_io reads of serial input with VIRQ_CONSOLE,
//! mca and physdev_op.

use super::evtchn::{bits, op};
use super::*;
use warden_abi::console;
use warden_abi::xen::event_channel as ec;
use warden_abi::xen::platform::{self as pf, PlatformOp};
use warden_abi::xen::xen as x;

const DOM0: &str = "system_u:system_r:dom0_t";

fn platform(w: &World, d: &Domain, cmd: u32, member: &[u8]) -> (i64, PlatformOp) {
    let mut o = PlatformOp {
        cmd,
        interface_version: pf::INTERFACE_VERSION,
        u: [0; 128],
    };
    o.u[..member.len()].copy_from_slice(member);
    w.put(d, ARG, &o);
    let r = w.call(d, hc::PLATFORM_OP, [ARG, 0, 0, 0, 0]);
    (r, w.get(d, ARG))
}

/// (wc_version, wc_sec, wc_nsec, wc_sec_hi) of `d`'s shared_info page.
fn wallclock(w: &World, d: &Domain) -> (u32, u32, u32, u32) {
    let at = core::mem::offset_of!(x::SharedInfo, wc_version) as u64;
    crate::xen::shared_info::Shared::with(d, w.hv.platform.mem(), |s| {
        let a = s.si_read(at).unwrap();
        let b = s.si_read(at + 8).unwrap();
        (a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32)
    })
}

#[test]
fn settime_sets_every_domains_wall_clock_and_only_dom0_may() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let before = wallclock(&w, &d1);
    // 2026-12-07 12:00:00.25 UTC when system time was 3 s.
    let t = pf::Settime64 {
        secs: 1_796_644_800,
        nsecs: 250_000_000,
        mbz: 0,
        system_time: 3_000_000_000,
    };
    // A domU may not (xen:settime), and nothing changes.
    let (r, _) = platform(&w, &d1, pf::SETTIME64, t.as_bytes());
    assert_eq!(r, -(errno::EACCES as i64));
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("{ settime }") && l.contains("tclass=xen"))
    );
    assert_eq!(wallclock(&w, &d1), before);
    // dom0 may: every domain's wall clock is UTC at system time 0.
    let (r, _) = platform(&w, &d0, pf::SETTIME64, t.as_bytes());
    assert_eq!(r, 0);
    for d in [&d0, &d1] {
        let (ver, sec, nsec, hi) = wallclock(&w, d);
        assert_eq!((sec, nsec, hi), (1_796_644_797, 250_000_000, 0));
        assert_eq!(ver % 2, 0, "the seqlock is closed");
    }
    assert_eq!(wallclock(&w, &d1).0, before.0 + 2);
    // mbz must be zero.
    let bad = pf::Settime64 { mbz: 1, ..t };
    let (r, _) = platform(&w, &d0, pf::SETTIME64, bad.as_bytes());
    assert_eq!(r, -(errno::EINVAL as i64));
    assert_eq!(wallclock(&w, &d1).1, 1_796_644_797);
    // settime32.
    let t32 = pf::Settime32 {
        secs: 1_000_000_000,
        nsecs: 5,
        system_time: 1_000_000_000,
    };
    let (r, _) = platform(&w, &d0, pf::SETTIME32, t32.as_bytes());
    assert_eq!(r, 0);
    let (_, sec, nsec, _) = wallclock(&w, &d1);
    assert_eq!((sec, nsec), (999_999_999, 5));
    assert_eq!(w.hv.wallclock_ns(), 999_999_999_000_000_005);
    // A domain created later gets the new clock.
    let d2 = w.domain(2, DOMU);
    assert_eq!(wallclock(&w, &d2).1, 999_999_999);
}

#[test]
fn a_wrong_interface_version_is_eacces_before_any_check() {
    let w = world(true);
    let d1 = w.domain(1, DOMU);
    let o = PlatformOp {
        cmd: pf::SETTIME64,
        interface_version: 0x0300_0000,
        u: [0; 128],
    };
    w.put(&d1, ARG, &o);
    assert_eq!(
        w.call(&d1, hc::PLATFORM_OP, [ARG, 0, 0, 0, 0]),
        -(errno::EACCES as i64)
    );
    assert!(w.audit_lines().is_empty(), "no check ran");
    // An unreadable argument: EFAULT.
    assert_eq!(
        w.call(&d1, hc::PLATFORM_OP, [PAGES * 4096 - 64, 0, 0, 0, 0]),
        -(errno::EFAULT as i64)
    );
}

#[test]
fn firmware_info_answers_as_xen_on_a_bios_boot_without_disks() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let fw = |d: &Domain, kind: u32, index: u32| {
        platform(
            &w,
            d,
            pf::FIRMWARE_INFO,
            pf::FirmwareInfo { kind, index }.as_bytes(),
        )
    };
    // Linux's EFI probe (xen_pvh_init): not booted through EFI.
    assert_eq!(fw(&d0, pf::FW_EFI_INFO, 0).0, -(errno::ENOSYS as i64));
    for kind in [
        pf::FW_DISK_INFO,
        pf::FW_DISK_MBR_SIGNATURE,
        pf::FW_VBEDDC_INFO,
    ] {
        assert_eq!(fw(&d0, kind, 0).0, -(errno::ESRCH as i64), "type {kind}");
    }
    assert_eq!(fw(&d0, 99, 0).0, -(errno::EINVAL as i64));
    // The keyboard shift flags: index 0 only; the byte is written.
    let mut pre = pf::FirmwareInfo {
        kind: pf::FW_KBD_SHIFT_FLAGS,
        index: 0,
    }
    .as_bytes()
    .to_vec();
    pre.extend_from_slice(&[0xAA; 8]);
    let (r, o) = platform(&w, &d0, pf::FIRMWARE_INFO, &pre);
    assert_eq!((r, o.u[8], o.u[9]), (0, 0, 0xAA));
    assert_eq!(fw(&d0, pf::FW_KBD_SHIFT_FLAGS, 1).0, -(errno::ESRCH as i64));
    assert!(w.audit_lines().is_empty());
    // A domU is refused (xen:firmware).
    assert_eq!(fw(&d1, pf::FW_EFI_INFO, 0).0, -(errno::EACCES as i64));
    assert!(w.audit_lines().iter().any(|l| l.contains("{ firmware }")));
}

#[test]
fn get_cpuinfo_describes_the_physical_cpus() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let info = |d: &Domain, cpu: u32| {
        let (r, o) = platform(
            &w,
            d,
            pf::GET_CPUINFO,
            pf::PcpuInfo {
                xen_cpuid: cpu,
                flags: 0x55,
                ..Default::default()
            }
            .as_bytes(),
        );
        (r, o.member::<pf::PcpuInfo>())
    };
    let (r, i) = info(&d0, 0);
    assert_eq!(r, 0);
    assert_eq!(
        (i.xen_cpuid, i.max_present, i.flags, i.apic_id, i.acpi_id),
        (0, 0, pf::PCPU_FLAGS_ONLINE, 0, 0)
    );
    let (r, i) = info(&d0, 7);
    assert_eq!(r, 0);
    assert_eq!((i.flags, i.max_present), (pf::PCPU_FLAGS_INVALID, 0));
    let (r, i) = info(&d1, 0);
    assert_eq!(r, -(errno::EACCES as i64));
    assert_eq!(i.flags, 0x55, "nothing written");
    assert!(w.audit_lines().iter().any(|l| l.contains("{ getcpuinfo }")));
}

#[test]
fn commands_warden_lacks_and_commands_xen_does_not_know() {
    // FLASK enforcing, the default policy (handle_unknown deny): a command
    // Xen's hook does not know is EPERM (avc_unknown_permission); one Xen
    // has and Warden lacks is ENOSYS.
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    assert_eq!(
        platform(&w, &d0, 64, &[]).0,
        -(errno::EPERM as i64),
        "XENPF_get_dom0_console (Xen 4.18)"
    );
    assert_eq!(
        platform(&w, &d0, 51, &[]).0,
        -(errno::ENOSYS as i64),
        "enter_acpi_sleep"
    );
    // Without FLASK: the dummy module lets only the control domain reach
    // the `default:` case.
    let w = world(false);
    let d0 = w.domain(0, "");
    let d1 = w.domain(1, "");
    assert_eq!(platform(&w, &d0, 64, &[]).0, -(errno::ENOSYS as i64));
    assert_eq!(platform(&w, &d1, 64, &[]).0, -(errno::EPERM as i64));
    // Settime is the control domain's only (XSM_PRIV).
    let t = pf::Settime64::default();
    assert_eq!(
        platform(&w, &d1, pf::SETTIME64, t.as_bytes()).0,
        -(errno::EPERM as i64)
    );
    assert_eq!(platform(&w, &d0, pf::SETTIME64, t.as_bytes()).0, 0);
}

#[test]
fn mca_and_physdev_op_are_enosys_for_a_pvh_caller() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    for d in [&d0, &d1] {
        assert_eq!(
            w.call(d, hc::MCA, [ARG, 0, 0, 0, 0]),
            -(errno::ENOSYS as i64)
        );
        // map_pirq (13): no PIRQs for PVH; pci_device_add (25): no PCI.
        for cmd in [13, 25, 24, 1000] {
            assert_eq!(
                w.call(d, hc::PHYSDEV_OP, [cmd, ARG, 0, 0, 0]),
                -(errno::ENOSYS as i64),
                "physdev_op {cmd}"
            );
        }
    }
    assert!(w.audit_lines().is_empty());
}

fn read(w: &World, d: &Domain, count: u64) -> (i64, Vec<u8>) {
    w.hv.write_phys(d, BUF, &[0u8; 256]).unwrap();
    let r = w.call(d, hc::CONSOLE_IO, [console::READ as u64, count, BUF, 0, 0]);
    let mut b = [0u8; 256];
    w.hv.read_phys(d, BUF, &mut b).unwrap();
    (r, b[..r.max(0) as usize].to_vec())
}

#[test]
fn serial_input_raises_virq_console_and_is_read_by_dom0_only() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let (r, b) = op(
        &w,
        &d0,
        ec::BIND_VIRQ,
        &ec::BindVirq {
            virq: x::VIRQ_CONSOLE,
            vcpu: 0,
            port: 0,
        },
    );
    assert_eq!(r, 0, "{:?}", w.audit_lines());
    // Nothing typed: no event, nothing to read.
    assert_eq!(w.hv.poll_serial_input(true), 0);
    assert!(!bits(&w, &d0, b.port).0);
    assert_eq!(read(&w, &d0, 16), (0, Vec::new()));
    // Typing raises VIRQ_CONSOLE in dom0 (the housekeeping's poll).
    w.plat.uart.lock().unwrap().extend_from_slice(b"ls -l\r");
    assert_eq!(w.hv.poll_serial_input(true), 6);
    assert!(bits(&w, &d0, b.port).0);
    // A domU may not read it (xen:readconsole), and it stays for dom0.
    assert_eq!(read(&w, &d1, 16).0, -(errno::EACCES as i64));
    assert!(
        w.audit_lines()
            .iter()
            .any(|l| l.contains("{ readconsole }"))
    );
    assert_eq!(read(&w, &d0, 3), (3, b"ls ".to_vec()));
    assert_eq!(read(&w, &d0, 16), (3, b"-l\r".to_vec()));
    // More than the buffer holds (Xen's 128 bytes): the rest is dropped.
    let long: Vec<u8> = (0..200u32).map(|i| b'a' + (i % 26) as u8).collect();
    w.plat.uart.lock().unwrap().extend_from_slice(&long);
    w.hv.poll_serial_input(true);
    w.hv.poll_serial_input(true);
    let (r, got) = read(&w, &d0, 256);
    assert_eq!(r, 128);
    assert_eq!(got, long[..128]);
    // A read polls the UART itself (a polling reader need not wait for the
    // housekeeping).
    w.plat.uart.lock().unwrap().extend_from_slice(b"q");
    assert_eq!(read(&w, &d0, 16), (1, b"q".to_vec()));
    // Xen's count is an unsigned int; above INT_MAX it is E2BIG.
    assert_eq!(read(&w, &d0, 0x8000_0000).0, -(errno::E2BIG as i64));
    assert_eq!(read(&w, &d0, 0x1_0000_0000).0, 0, "truncated to 0");
}

/// CTRL-A three times gives serial input to Warden's debug keys (Xen's
/// conswitch): `q` raises VIRQ_DEBUG on every vCPU that bound it, typed
/// keys do not reach dom0, and CTRL-A three times gives input back.
#[test]
fn ctrl_a_three_times_switches_input_to_the_debug_keys_and_back() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let bind = |d: &Domain, virq: u32| {
        let (r, b) = op(
            &w,
            d,
            ec::BIND_VIRQ,
            &ec::BindVirq {
                virq,
                vcpu: 0,
                port: 0,
            },
        );
        assert_eq!(r, 0, "{:?}", w.audit_lines());
        b.port
    };
    let con = bind(&d0, x::VIRQ_CONSOLE);
    let dbg1 = bind(&d1, x::VIRQ_DEBUG);
    let type_ = |s: &[u8]| {
        w.plat.uart.lock().unwrap().extend_from_slice(s);
        w.hv.poll_serial_input(true)
    };
    // Two CTRL-As are passed on with the next byte.
    assert_eq!(type_(b"\x01\x01l"), 3);
    assert_eq!(read(&w, &d0, 16), (3, b"\x01\x01l".to_vec()));
    assert!(bits(&w, &d0, con).0);
    assert!(!bits(&w, &d1, dbg1).0);
    // Three switch to Warden: `q` notifies the guests, nothing for dom0.
    assert_eq!(type_(b"\x01\x01\x01qzh"), 0);
    assert!(bits(&w, &d1, dbg1).0, "VIRQ_DEBUG raised in d1 by 'q'");
    assert_eq!(read(&w, &d0, 16), (0, Vec::new()));
    // Three more: back to dom0.
    assert_eq!(type_(b"\x01\x01\x01x"), 1);
    assert_eq!(read(&w, &d0, 16), (1, b"x".to_vec()));
}

fn debug_keys(w: &World, d: &Domain, keys: u64, nr_keys: u32) -> (i64, sc::Sysctl) {
    let a = sc::DebugKeys {
        keys,
        nr_keys,
        pad: 0,
    };
    let op = sc::Sysctl::new(sc::DEBUG_KEYS, &a);
    w.put(d, ARG, &op);
    let r = w.call(d, hc::SYSCTL, [ARG, 0, 0, 0, 0]);
    (r, w.get(d, ARG))
}

/// sysctl debug_keys (`xl debug-keys`) runs the keys as typed on the
/// serial console (`q` raises VIRQ_DEBUG in the guests that bound it);
/// nothing is copied back. A domain without xen:debug is refused and no
/// key runs; a bad buffer is -EFAULT once the keys before it ran.
#[test]
fn sysctl_debug_keys_runs_the_keys_for_dom0_only() {
    let w = world(true);
    let d0 = w.domain(0, DOM0);
    let d1 = w.domain(1, DOMU);
    let (r, b) = op(
        &w,
        &d1,
        ec::BIND_VIRQ,
        &ec::BindVirq {
            virq: x::VIRQ_DEBUG,
            vcpu: 0,
            port: 0,
        },
    );
    assert_eq!(r, 0);
    let dbg1 = b.port;
    // Refused for a guest: EACCES, an avc line, no key ran.
    w.put(&d1, BUF, &b'q');
    let (r, back) = debug_keys(&w, &d1, BUF, 1);
    assert_eq!(r, -(errno::EACCES as i64));
    assert!(!bits(&w, &d1, dbg1).0, "no VIRQ_DEBUG: 'q' did not run");
    let lines = w.audit_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("denied") && l.contains("{ debug }") && l.contains("tclass=xen ")),
        "{lines:?}"
    );
    assert_eq!(back.arg::<sc::DebugKeys>().nr_keys, 1);
    // dom0: no keys is success; a first key outside its memory is
    // -EFAULT and runs nothing.
    assert_eq!(debug_keys(&w, &d0, 0, 0).0, 0);
    let end = super::PAGES * 4096;
    assert_eq!(debug_keys(&w, &d0, end, 1).0, -(errno::EFAULT as i64));
    assert!(!bits(&w, &d1, dbg1).0);
    // Keys run in order: an unknown key ('z') is skipped, 'q' notifies d1.
    w.put(&d0, BUF, &u16::from_le_bytes(*b"zq"));
    let (r, back) = debug_keys(&w, &d0, BUF, 2);
    assert_eq!(r, 0);
    assert!(bits(&w, &d1, dbg1).0, "VIRQ_DEBUG raised in d1 by 'q'");
    // Nothing copied back (the structure is as dom0 wrote it).
    let a = back.arg::<sc::DebugKeys>();
    assert_eq!((a.keys, a.nr_keys), (BUF, 2));
    // The last byte of dom0's memory is a key, the next is not: 'q' ran,
    // then -EFAULT.
    super::evtchn::clear_bits(&w, &d1);
    assert!(!bits(&w, &d1, dbg1).0);
    w.put(&d0, end - 1, &b'q');
    assert_eq!(debug_keys(&w, &d0, end - 1, 2).0, -(errno::EFAULT as i64));
    assert!(bits(&w, &d1, dbg1).0, "the key before the fault ran");
}
