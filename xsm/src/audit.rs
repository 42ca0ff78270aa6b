//! Audit records: Xen's `avc:  denied  { ... } for ...` line with SELinux's
//! ` permissive=0|1`, a serial number and a rate limiter. Where records go
//! (Warden's console ring) is the caller's business: see [`AuditSink`].

use alloc::string::String;
use core::fmt;

/// Receives audit records and supplies the time for rate limiting.
pub trait AuditSink: Sync {
    /// A monotonic clock in milliseconds.
    fn now_ms(&self) -> u64;
    /// One record (format it with `{}` to get the line).
    fn emit(&self, record: &AuditRecord);
}

/// Optional details a caller adds to a record (Xen's `avc_audit_data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditData {
    /// The calling domain (`current=dN`), printed when no source is given.
    pub current: Option<u16>,
    /// The source domain (`source=dN`).
    pub source: Option<u16>,
    /// The target domain (`target=dN`).
    pub target: Option<u16>,
    /// One object detail.
    pub object: Option<AuditObject>,
}

/// The object of a check, as Xen prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditObject {
    /// `device=0x..` (PCI SBDF).
    Device(u32),
    /// `irq=N`.
    Irq(u32),
    /// `range=0x..-0x..` (I/O ports or memory frames).
    Range(u64, u64),
    /// `pte=0x.. mfn=0x..`.
    Pte(u64, u64),
}

/// What a record reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    /// An access decision (`denied`, or `granted` for auditallow).
    Avc {
        /// true for `granted`.
        granted: bool,
        /// Permission names, space separated (unnamed bits in hex).
        perms: String,
        /// Caller details.
        data: AuditData,
        /// Source context (or `ssid=N` if unknown).
        scontext: String,
        /// Target context (or `tsid=N` if unknown).
        tcontext: String,
        /// Class name.
        tclass: &'static str,
        /// Was the denial ignored (global permissive mode or a permissive type)?
        permissive: bool,
    },
    /// Records dropped by the rate limiter since the last emitted one.
    Suppressed {
        /// How many.
        count: u64,
    },
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Serial number; every record gets one, suppressed ones included, so gaps show losses.
    pub serial: u64,
    /// The time the record was made (milliseconds, from [`AuditSink::now_ms`]).
    pub time_ms: u64,
    /// What it reports.
    pub event: AuditEvent,
}

impl fmt::Display for AuditRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "audit({}.{:03}:{}): ",
            self.time_ms / 1000,
            self.time_ms % 1000,
            self.serial
        )?;
        match &self.event {
            AuditEvent::Suppressed { count } => {
                write!(f, "avc:  {count} audit messages suppressed")
            }
            AuditEvent::Avc {
                granted,
                perms,
                data,
                scontext,
                tcontext,
                tclass,
                permissive,
            } => {
                write!(
                    f,
                    "avc:  {}  {{ {} }} for ",
                    if *granted { "granted" } else { "denied" },
                    perms
                )?;
                if let Some(s) = data.source {
                    write!(f, "source=d{s} ")?;
                } else if let Some(c) = data.current {
                    write!(f, "current=d{c} ")?;
                }
                if let Some(t) = data.target {
                    write!(f, "target=d{t} ")?;
                }
                match data.object {
                    Some(AuditObject::Device(d)) => write!(f, "device={d:#x} ")?,
                    Some(AuditObject::Irq(i)) => write!(f, "irq={i} ")?,
                    Some(AuditObject::Range(a, b)) => write!(f, "range={a:#x}-{b:#x} ")?,
                    Some(AuditObject::Pte(p, m)) => write!(f, "pte={p:#x} mfn={m:#x} ")?,
                    None => {}
                }
                write!(
                    f,
                    "scontext={scontext} tcontext={tcontext} tclass={tclass} permissive={}",
                    u8::from(*permissive)
                )
            }
        }
    }
}

/// Token-bucket limiter: at most `burst` records per `interval_ms`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    pub(crate) burst: u32,
    pub(crate) interval_ms: u64,
    window_start: u64,
    used: u32,
    suppressed: u64,
}

impl RateLimit {
    pub(crate) const fn new(burst: u32, interval_ms: u64) -> Self {
        RateLimit {
            burst,
            interval_ms,
            window_start: 0,
            used: 0,
            suppressed: 0,
        }
    }

    /// Returns None if the record must be dropped, else Some(n) where n
    /// records were suppressed before it (to be reported first).
    pub(crate) fn admit(&mut self, now: u64) -> Option<u64> {
        if now.saturating_sub(self.window_start) >= self.interval_ms || now < self.window_start {
            self.window_start = now;
            self.used = 0;
        }
        if self.used >= self.burst {
            self.suppressed += 1;
            return None;
        }
        self.used += 1;
        let s = self.suppressed;
        self.suppressed = 0;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_line_format() {
        let r = AuditRecord {
            serial: 7,
            time_ms: 12_345,
            event: AuditEvent::Avc {
                granted: false,
                perms: "setenforce".into(),
                data: AuditData {
                    current: Some(0),
                    ..Default::default()
                },
                scontext: "system_u:system_r:dom0_t".into(),
                tcontext: "system_u:system_r:security_t".into(),
                tclass: "security",
                permissive: false,
            },
        };
        assert_eq!(
            alloc::format!("{r}"),
            "audit(12.345:7): avc:  denied  { setenforce } for current=d0 scontext=system_u:system_r:dom0_t tcontext=system_u:system_r:security_t tclass=security permissive=0"
        );
        let s = AuditRecord {
            serial: 9,
            time_ms: 1,
            event: AuditEvent::Suppressed { count: 3 },
        };
        assert_eq!(
            alloc::format!("{s}"),
            "audit(0.001:9): avc:  3 audit messages suppressed"
        );
    }

    #[test]
    fn rate_limit() {
        let mut r = RateLimit::new(2, 1000);
        assert_eq!(r.admit(0), Some(0));
        assert_eq!(r.admit(10), Some(0));
        assert_eq!(r.admit(20), None);
        assert_eq!(r.admit(30), None);
        assert_eq!(r.admit(1000), Some(2));
        assert_eq!(r.admit(1001), Some(0));
    }
}
