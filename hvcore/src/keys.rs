//! Debug keys: what a key typed on the serial console does once input goes
//! to Warden (CTRL-A three times, `conswitch=`), as Xen's keyhandlers.
//! Their output goes to the console ring and the serial console like any
//! log line, so `xl dmesg` shows it too.

use crate::hv::Hv;
use crate::sched::Life;
use alloc::string::String;
use core::fmt::Write;

/// The keys and what they do (the `h` list).
pub const KEYS: &[(u8, &str)] = &[
    (b'h', "show this message"),
    (b'm', "memory info"),
    (b'q', "dump domain (and guest debug) info"),
];

impl Hv {
    /// Key `k` was typed with input switched to Warden.
    pub fn debug_key(&self, k: u8) {
        match k {
            b'h' => {
                log::info!("'h' pressed -> showing installed handlers");
                for (key, what) in KEYS {
                    log::info!(" key '{}' (ascii '{:02x}') => {what}", *key as char, key);
                }
            }
            b'm' => {
                let mem = self.platform.mem();
                log::info!("'m' pressed -> memory info");
                log::info!(
                    "Physical memory: {} frames, {} free",
                    mem.total_frames(),
                    mem.free_frames()
                );
            }
            b'q' => self.dump_domains(),
            _ => log::info!(
                "'{}' (ascii '{:02x}') pressed -> no such key ('h' shows the keys)",
                if k.is_ascii_graphic() { k as char } else { '?' },
                k
            ),
        }
    }

    /// `q`: every domain and vCPU, then VIRQ_DEBUG raised on each vCPU
    /// (Xen's `dump_domains`: "Notifying guest d:v (virq 1, port N)").
    fn dump_domains(&self) {
        let now = self.now();
        log::info!("'q' pressed -> dumping domain info (now = {now} ns)");
        let domains = self.domains.all();
        for d in &domains {
            let st = self.sched.domain_state(d.id, now);
            let (tot, max) = {
                let m = d.mem.read();
                (m.tot_pages, m.max_pages)
            };
            let life = match st.map(|s| s.life) {
                Some(Life::Active) => String::from("active"),
                Some(Life::Shutdown(r)) => alloc::format!("shut down (reason {r})"),
                Some(other) => alloc::format!("{other:?}"),
                None => String::from("not scheduled"),
            };
            log::info!(
                "General information for domain {} ('{}'){}:",
                d.id,
                d.name,
                if d.privileged {
                    ", hardware domain"
                } else {
                    ""
                }
            );
            log::info!(
                "    pages: {tot} of max {max}; {}; paused {}; cpu time {} ns",
                life,
                st.map_or(0, |s| s.pause),
                st.map_or(0, |s| s.cpu_time_ns)
            );
            for v in d.vcpus.read().iter() {
                let k = (d.id, v.id);
                let mut line = String::new();
                let _ = write!(
                    line,
                    "    VCPU{}: {}{}",
                    v.id,
                    if self.sched.is_up(k) {
                        "online"
                    } else {
                        "down"
                    },
                    if self.sched.is_running(k) {
                        ", running"
                    } else {
                        ""
                    }
                );
                log::info!("{line}");
            }
        }
        for d in &domains {
            for v in d.vcpus.read().iter() {
                let port = d.evtchn.virq_port(v.id, warden_abi::xen::xen::VIRQ_DEBUG);
                log::info!(
                    "Notifying guest {}:{} (virq {}, port {port})",
                    d.id,
                    v.id,
                    warden_abi::xen::xen::VIRQ_DEBUG
                );
                self.send_vcpu_virq(v, warden_abi::xen::xen::VIRQ_DEBUG);
            }
        }
    }
}
