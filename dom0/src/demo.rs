//! `cargo xtask run`: show that Warden works, then an operator shell.

use alloc::string::String;
use alloc::vec::Vec;
use warden_abi::domctl::{self, GetDomainInfo};
use warden_abi::version::*;
use warden_guest::hypercall as hc;
use warden_guest::println;
use warden_guest::start::Boot;
use warden_guest::util::cstr;

pub fn run(boot: &'static Boot) -> ! {
    println!(
        "dom0: Warden's dom0 is up: domain {}, {} vCPUs, {} MiB, command line '{}'",
        boot.domid(),
        boot.vcpus(),
        boot.mem_bytes() >> 20,
        boot.cmdline()
    );
    version();
    host();
    domains();
    flask(boot.domid());
    dmesg(false, 12);
    println!("dom0: type 'help' on the serial console for commands");
    shell(boot)
}

fn version() {
    let v = hc::xen_version(VERSION, 0).unwrap_or(0);
    let mut extra = ExtraVersion::default();
    let _ = hc::xen_version_into(EXTRAVERSION, &mut extra);
    let mut caps = Capabilities::default();
    let _ = hc::xen_version_into(CAPABILITIES, &mut caps);
    println!(
        "dom0: xen_version: Warden {}.{}{}, capabilities '{}'",
        v >> 16,
        v & 0xffff,
        cstr(&extra.text),
        cstr(&caps.text)
    );
    let mut buf = [0u8; 4 + 64];
    buf[..4].copy_from_slice(&64u32.to_le_bytes());
    match hc::xen_version(BUILD_ID, buf.as_mut_ptr() as u64) {
        Ok(n) => {
            let mut s = String::new();
            for b in &buf[4..4 + n as usize] {
                s.push_str(&alloc::format!("{b:02x}"));
            }
            println!("dom0: build-id {s}");
        }
        Err(e) => println!("dom0: build-id: {e}"),
    }
}

fn host() {
    match hc::physinfo() {
        Ok(p) => println!(
            "dom0: physinfo: {} CPUs at {} MHz, {} MiB total, {} MiB free",
            p.nr_cpus,
            p.cpu_khz / 1000,
            (p.total_pages * 4096) >> 20,
            (p.free_pages * 4096) >> 20
        ),
        Err(e) => println!("dom0: physinfo: {e}"),
    }
}

fn label(sid: u32) -> String {
    let mut b = [0u8; 256];
    match hc::flask_sid_to_context(sid, &mut b) {
        Ok(_) => String::from(cstr(&b)),
        Err(_) => alloc::format!("sid {sid}"),
    }
}

fn state(i: &GetDomainInfo) -> &'static str {
    if i.flags & domctl::DOMINF_DYING != 0 {
        "dying"
    } else if i.flags & domctl::DOMINF_SHUTDOWN != 0 {
        "shutdown"
    } else if i.flags & domctl::DOMINF_PAUSED != 0 {
        "paused"
    } else if i.flags & domctl::DOMINF_RUNNING != 0 {
        "running"
    } else if i.flags & domctl::DOMINF_BLOCKED != 0 {
        "blocked"
    } else {
        "runnable"
    }
}

fn domains() {
    let mut list = [GetDomainInfo::default(); 16];
    match hc::getdomaininfolist(0, &mut list) {
        Ok(n) => {
            println!("dom0: {n} domains (getdomaininfolist):");
            println!("dom0:   ID  state     vCPUs  MiB  time(ms)  label");
            for i in &list[..n] {
                println!(
                    "dom0:   {:<3} {:<9} {:<6} {:<4} {:<9} {}",
                    i.domain,
                    state(i),
                    i.nr_online_vcpus,
                    (i.tot_pages * 4096) >> 20,
                    i.cpu_time / 1_000_000,
                    label(i.ssidref)
                );
            }
        }
        Err(e) => println!("dom0: getdomaininfolist: {e}"),
    }
}

fn flask(domid: u16) {
    match warden_guest::flask::mode(domid) {
        Ok(m @ warden_guest::flask::Mode::Disabled) => println!("dom0: FLASK: {m}"),
        Ok(m) => {
            let vers = hc::flask_simple(warden_abi::xsm::POLICYVERS).unwrap_or(0);
            let bools = match warden_guest::flask::booleans() {
                Ok(v) => v
                    .iter()
                    .map(|b| {
                        if b.current == b.pending {
                            alloc::format!("{}={}", b.name, b.current as u8)
                        } else {
                            alloc::format!(
                                "{}={} (pending {})",
                                b.name,
                                b.current as u8,
                                b.pending as u8
                            )
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                Err(e) => alloc::format!("({e})"),
            };
            println!("dom0: FLASK {m} (policy version {vers}); booleans: {bools}");
        }
        Err(e) => println!("dom0: FLASK: {e}"),
    }
}

/// Read the whole console ring with readconsole (incremental, in 4 KiB
/// chunks, as libxl does); with `clear`, each call clears what it returned
/// (Xen's semantics), so nothing unread is lost. Print the last `tail` lines.
fn dmesg(clear: bool, tail: usize) {
    let mut all = Vec::new();
    let mut index = 0u32;
    let mut first = true;
    let mut buf = alloc::vec![0u8; 4096];
    loop {
        match hc::readconsole(&mut buf, index, !first, clear) {
            Ok((0, _)) => break,
            Ok((n, next)) => {
                all.extend_from_slice(&buf[..n]);
                index = next;
                first = false;
            }
            Err(e) => {
                println!("dom0: readconsole: {e}");
                return;
            }
        }
    }
    let text = core::str::from_utf8(&all).unwrap_or("");
    let lines: Vec<&str> = text.lines().collect();
    println!(
        "dom0: console ring (readconsole{}): {} bytes, {} lines; the last {}:",
        if clear { ", cleared" } else { "" },
        all.len(),
        lines.len(),
        tail.min(lines.len())
    );
    for l in &lines[lines.len().saturating_sub(tail)..] {
        println!("dom0: | {l}");
    }
}

/// The shell's prompt.
const PROMPT: &str = "warden-dom0# ";

fn shell(boot: &'static Boot) -> ! {
    let mut line = String::new();
    let mut buf = [0u8; 64];
    warden_guest::print!("{PROMPT}");
    loop {
        let n = hc::console_read(&mut buf).unwrap_or(0) as usize;
        if n == 0 {
            warden_guest::time::sleep_ns(50_000_000);
            continue;
        }
        for &b in &buf[..n] {
            match b {
                b'\r' | b'\n' => {
                    warden_guest::print!("\n");
                    command(boot, line.trim());
                    line.clear();
                    warden_guest::print!("{PROMPT}");
                }
                // Backspace / DEL: erase the last character.
                0x08 | 0x7f if !line.is_empty() => {
                    line.pop();
                    warden_guest::print!("\x08 \x08");
                }
                0x20..=0x7e if line.len() < 128 => {
                    line.push(b as char);
                    // Echo what was typed.
                    let _ = hc::console_write(&[b]);
                }
                _ => {}
            }
        }
    }
}

fn result(r: hc::HResult) -> String {
    match r {
        Ok(_) => "done".into(),
        Err(e) => alloc::format!("{e}"),
    }
}

fn command(boot: &'static Boot, c: &str) {
    let mut w = c.split_whitespace();
    match (w.next(), w.next()) {
        (None, _) => {}
        (Some("help"), _) => println!(
            "dom0: commands: list, dmesg [-c], info, version, getenforce, setenforce 0|1|permissive|enforcing, getbool, setbool NAME 0|1|true|false|on|off, pause N, unpause N, destroy N, modules, xen-livepatch ..., poweroff"
        ),
        (Some("xen-livepatch"), _) => {
            // Payload files are dom0's boot modules, named by their command line.
            let files = |name: &str| boot.modules().find(|(_, c)| *c == name).map(|(d, _)| d);
            let args = c.trim_start_matches("xen-livepatch").trim();
            let _ = warden_guest::livepatch::run(args, &files);
        }
        (Some("modules"), _) => {
            for (d, c) in boot.modules() {
                println!("dom0: module '{c}': {} bytes", d.len());
            }
        }
        (Some("getbool"), _) => match warden_guest::flask::booleans() {
            Ok(v) => {
                for b in v {
                    if b.current == b.pending {
                        println!("dom0: {}: {}", b.name, b.current as u8);
                    } else {
                        println!(
                            "dom0: {}: {} (pending {})",
                            b.name, b.current as u8, b.pending as u8
                        );
                    }
                }
            }
            Err(e) => println!("dom0: getbool: {e}"),
        },
        (Some("setbool"), None) => {
            println!("dom0: setbool: usage: setbool NAME 0|1|true|false|on|off")
        }
        (Some("setbool"), Some(name)) => match warden_guest::flask::parse_bool(w.next()) {
            Ok(on) => println!(
                "dom0: setbool {name}={}: {}",
                on as u8,
                result(hc::flask_setbool(name, on, true))
            ),
            Err(e) => println!("dom0: setbool {name}: {e}; nothing changed"),
        },
        (Some("list"), _) => domains(),
        (Some("dmesg"), arg) => dmesg(arg == Some("-c"), 40),
        (Some("info"), _) => host(),
        (Some("version"), _) => version(),
        (Some("getenforce"), _) => flask(boot.domid()),
        (Some("setenforce"), v) => match v.map(warden_guest::flask::parse_enforce) {
            Some(Ok(on)) => println!(
                "dom0: setenforce {}: {}",
                if on { "enforcing" } else { "permissive" },
                result(hc::flask_setenforce(on))
            ),
            Some(Err(e)) => println!("dom0: setenforce: {e}; nothing changed"),
            None => println!("dom0: setenforce: usage: setenforce 0|1|permissive|enforcing"),
        },
        (Some(op @ ("pause" | "unpause" | "destroy")), Some(d)) => match d.parse::<u16>() {
            Ok(d) => {
                let r = match op {
                    "pause" => hc::pausedomain(d),
                    "unpause" => hc::unpausedomain(d),
                    _ => hc::destroydomain(d),
                };
                println!("dom0: {op} d{d}: {}", result(r));
            }
            Err(_) => println!("dom0: {op}: '{d}' is not a domain id"),
        },
        (Some("poweroff"), _) => warden_guest::exit::poweroff(),
        (Some(x), _) => println!("dom0: unknown command '{x}' (try help)"),
    }
}
