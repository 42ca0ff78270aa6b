//! The hypervisor command line, in Xen's syntax.
//!
//! Options are separated by spaces; a double-quoted part may contain spaces
//! (`opt="a b"`). Forms: `key=value`; booleans as `key`, `no-key`, or
//! `key=<yes|no|on|off|true|false|enable|disable|1|0>`. In option names `-` and
//! `_` are equivalent. Sizes take an optional unit `k`/`K`, `M`, `G`, `T`
//! (powers of 1024) or `B`; a bare number is bytes. Numbers may be decimal or
//! `0x` hexadecimal. A later occurrence of an option overrides an earlier one.
//!
//! Parsing never fails and never panics: unknown options and malformed values
//! become [`Diagnostic`]s, and a malformed value keeps the default (or the
//! previous value). The caller logs the diagnostics.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Default console ring size (Xen's minimum is 16 KiB; ours is larger).
pub const CONRING_DEFAULT: usize = 64 * 1024;
/// Smallest accepted console ring.
pub const CONRING_MIN: usize = 4 * 1024;
/// Largest accepted console ring.
pub const CONRING_MAX: usize = 64 * 1024 * 1024;

/// A verbosity threshold (`loglvl=`), from least to most verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    None,
    Error,
    Warning,
    Info,
    Debug,
    All,
}

impl LogLevel {
    fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "none" => LogLevel::None,
            "error" => LogLevel::Error,
            "warning" | "warn" => LogLevel::Warning,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "all" => LogLevel::All,
            _ => return None,
        })
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::None => "none",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::All => "all",
        }
    }
}

/// FLASK mode selected at boot (`flask=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlaskMode {
    Enforcing,
    Permissive,
    Late,
    Disabled,
}

impl FlaskMode {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FlaskMode::Enforcing => "enforcing",
            FlaskMode::Permissive => "permissive",
            FlaskMode::Late => "late",
            FlaskMode::Disabled => "disabled",
        }
    }
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
    Mark,
    Space,
}

/// Configuration of one 16550 UART (`com1=`, `com2=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialConfig {
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub io_base: u16,
}

impl SerialConfig {
    /// COM1 defaults: 0x3f8, 115200 8n1.
    pub const COM1: SerialConfig = SerialConfig {
        baud: 115200,
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 1,
        io_base: 0x3f8,
    };
    /// COM2 defaults: 0x2f8, 115200 8n1.
    pub const COM2: SerialConfig = SerialConfig {
        io_base: 0x2f8,
        ..SerialConfig::COM1
    };
}

impl fmt::Display for SerialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.parity {
            Parity::None => 'n',
            Parity::Odd => 'o',
            Parity::Even => 'e',
            Parity::Mark => 'm',
            Parity::Space => 's',
        };
        write!(
            f,
            "{},{}{}{},{:#x}",
            self.baud, self.data_bits, p, self.stop_bits, self.io_base
        )
    }
}

/// Where console output goes (`console=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleTargets {
    pub com1: bool,
    pub com2: bool,
}

/// dom0's memory (`dom0_mem=[min:AMT,][max:AMT,][AMT]`, as Xen 4.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dom0Mem {
    pub target: Option<MemSize>,
    pub min: Option<MemSize>,
    pub max: Option<MemSize>,
}

/// One amount of `dom0_mem=` (Xen's `struct memsize`): `SIZE`, `FRAC%` or
/// `SIZE+FRAC%` of the available memory, or, with a leading `-`, the
/// available memory less that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemSize {
    pub bytes: u64,
    pub percent: u32,
    pub minus: bool,
}

impl MemSize {
    /// A plain size.
    pub const fn bytes(bytes: u64) -> MemSize {
        MemSize {
            bytes,
            percent: 0,
            minus: false,
        }
    }

    /// The amount out of `avail` bytes (Xen's `get_memsize`, saturating).
    pub fn of(&self, avail: u64) -> u64 {
        let frac = (avail as u128 * self.percent as u128 / 100) as u64;
        let n = self.bytes.saturating_add(frac);
        if self.minus {
            avail.saturating_sub(n)
        } else {
            n
        }
    }
}

impl Dom0Mem {
    /// dom0's memory out of `avail` free bytes (Xen's
    /// `dom0_compute_nr_pages`): the amount (`default` when none is given,
    /// or it comes to 0), raised to the minimum, lowered to the maximum and
    /// to what is available; a minimum above the maximum loses.
    pub fn bytes(&self, avail: u64, default: u64) -> u64 {
        let mut n = match self.target.map(|t| t.of(avail)) {
            Some(n) if n != 0 => n,
            _ => default,
        };
        if let Some(min) = self.min {
            n = n.max(min.of(avail));
        }
        if let Some(max) = self.max {
            n = n.min(max.of(avail));
        }
        n.min(avail)
    }
}

/// dom0's vCPU bounds (`dom0_max_vcpus=N`, `N-`, `-M` or `N-M`, as Xen
/// 4.17's `parse_dom0_max_vcpus`): N alone is both bounds, 0 counts as 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dom0Vcpus {
    pub min: u32,
    pub max: u32,
}

impl Default for Dom0Vcpus {
    fn default() -> Self {
        Dom0Vcpus {
            min: 1,
            max: u32::MAX,
        }
    }
}

impl Dom0Vcpus {
    /// dom0's vCPUs on a machine running guests on `cpus` CPUs (Xen's
    /// `dom0_max_vcpus()`): the CPU count, raised to the minimum, lowered to
    /// the maximum, at most `limit` (the most vCPUs a domain may have).
    pub fn count(&self, cpus: u32, limit: u32) -> u32 {
        let mut n = cpus;
        if self.min > n {
            n = self.min;
        }
        if self.max < n {
            n = self.max;
        }
        n.clamp(1, limit)
    }
}

fn parse_dom0_max_vcpus(value: &str) -> Result<Dom0Vcpus, String> {
    let num = |s: &str| {
        parse_u64(s)
            .map(|n| n.min(u32::MAX as u64) as u32)
            .ok_or_else(|| format!("'{}' is not a number", clip(s)))
    };
    let mut v = Dom0Vcpus::default();
    if let Some(m) = value.strip_prefix('-') {
        v.max = num(m)?;
    } else {
        let (n, rest) = match value.split_once('-') {
            Some((n, m)) => (n, Some(m)),
            None => (value, None),
        };
        v.min = num(n)?.max(1);
        match rest {
            None => v.max = v.min,
            Some("") => {}
            Some(m) => v.max = num(m)?,
        }
    }
    Ok(v)
}

fn describe_dom0_vcpus(v: &Dom0Vcpus) -> String {
    match (v.min, v.max) {
        (1, u32::MAX) => "<all CPUs>".into(),
        (a, b) if a == b => a.to_string(),
        (a, u32::MAX) => format!("{a}-"),
        (a, b) => format!("{a}-{b}"),
    }
}

/// Faults the test build can inject (`test_fault=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFault {
    /// Execute `ud2` (invalid opcode) a few calls deep.
    InvalidOpcode,
    /// Call `panic!` a few calls deep.
    Panic,
    /// Write to the image's own text (must fault: text is read-only).
    WriteText,
    /// Write to the image's read-only data (must fault).
    WriteRodata,
    /// Jump into the image's data (must fault: data is no-execute).
    ExecData,
}

impl TestFault {
    fn parse(s: &str) -> Option<TestFault> {
        Some(match s {
            "ud" | "ud2" => TestFault::InvalidOpcode,
            "panic" => TestFault::Panic,
            "write_text" => TestFault::WriteText,
            "write_rodata" => TestFault::WriteRodata,
            "exec_data" => TestFault::ExecData,
            _ => return None,
        })
    }
}

/// Test-only options; honoured only by an image built with the `test-hooks` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TestOptions {
    /// Write the agreed exit code to QEMU's debug-exit port after the ready line or a fatal error.
    pub exit: bool,
    /// Inject this fault after boot completes.
    pub fault: Option<TestFault>,
}

impl TestOptions {
    /// Whether any test-only option was given.
    pub fn any(&self) -> bool {
        self.exit || self.fault.is_some()
    }
}

/// All options, with their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub console: ConsoleTargets,
    pub com1: SerialConfig,
    pub com2: SerialConfig,
    /// Console ring size in bytes.
    pub conring_size: usize,
    /// Console verbosity.
    pub loglvl: LogLevel,
    /// Prefix console lines with the time since boot.
    pub console_timestamps: bool,
    pub flask: FlaskMode,
    /// A `flask=` value that is not a mode (Xen refuses to boot; so does Warden).
    pub flask_invalid: Option<String>,
    pub dom0_mem: Dom0Mem,
    /// dom0's vCPUs (`dom0_max_vcpus=`, Xen's bounds on the CPU count).
    pub dom0_max_vcpus: Dom0Vcpus,
    /// FLASK audit rate limit (`audit_ratelimit=BURST[/MS]`, 0 = unlimited):
    /// at most BURST records per MS milliseconds (default 64 per 1000).
    pub audit_ratelimit: Option<(u32, u64)>,
    /// Guest console rate limit per domain (`guest_console_ratelimit=BURST[/MS]`,
    /// 0 = unlimited): at most BURST lines per MS milliseconds.
    pub guest_console_ratelimit: (u32, u64),
    /// dom0's console output also goes into the console ring (`console_to_ring`,
    /// as Xen; default off: it goes to the serial console only).
    pub console_to_ring: bool,
    /// Bring up at most this many CPUs (including the boot CPU).
    pub maxcpus: Option<u32>,
    /// Serial input switch (`conswitch=C[x]`, Xen's): CTRL-C typed three
    /// times moves serial input between dom0 and Warden's debug keys.
    pub conswitch: ConSwitch,
    pub test: TestOptions,
}

/// `conswitch=`: the switch character and where input goes at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConSwitch {
    /// The letter whose CTRL code switches (`a`: CTRL-A, 0x01).
    pub letter: u8,
    /// Input stays with Warden at boot (`x` after the letter) instead of
    /// going to dom0.
    pub stay_with_xen: bool,
}

impl Default for ConSwitch {
    fn default() -> Self {
        ConSwitch {
            letter: b'a',
            stay_with_xen: false,
        }
    }
}

impl ConSwitch {
    /// The byte that switches (CTRL-letter).
    pub fn code(self) -> u8 {
        self.letter - b'a' + 1
    }

    fn describe(self) -> String {
        format!(
            "{}{}",
            self.letter as char,
            if self.stay_with_xen { "x" } else { "" }
        )
    }
}

/// Default guest console rate limit: lines per domain and period (ms).
pub const GUEST_CONSOLE_RATELIMIT: (u32, u64) = (200, 1000);

impl Default for Options {
    fn default() -> Self {
        Options {
            console: ConsoleTargets {
                com1: true,
                com2: false,
            },
            com1: SerialConfig::COM1,
            com2: SerialConfig::COM2,
            conring_size: CONRING_DEFAULT,
            loglvl: LogLevel::Info,
            console_timestamps: true,
            flask: FlaskMode::Enforcing,
            flask_invalid: None,
            dom0_mem: Dom0Mem::default(),
            dom0_max_vcpus: Dom0Vcpus::default(),
            audit_ratelimit: None,
            guest_console_ratelimit: GUEST_CONSOLE_RATELIMIT,
            console_to_ring: false,
            maxcpus: None,
            conswitch: ConSwitch::default(),
            test: TestOptions::default(),
        }
    }
}

/// Something the parser wants the operator to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// An option Warden does not know; ignored.
    Unknown { key: String },
    /// A value that does not parse; the previous value (`kept`) stays in force.
    Malformed {
        key: String,
        value: String,
        reason: String,
        kept: String,
    },
    /// A value that parses but is partly or wholly ignored.
    Ignored { key: String, reason: String },
    /// A value outside the accepted range, replaced by the nearest accepted one.
    Clamped {
        key: String,
        value: String,
        used: String,
    },
}

/// Shorten untrusted text for messages.
fn clip(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push_str("...");
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::Unknown { key } => write!(f, "unknown option '{key}' ignored"),
            Diagnostic::Malformed {
                key,
                value,
                reason,
                kept,
            } => write!(
                f,
                "malformed value '{key}={value}': {reason}; keeping {key}={kept}"
            ),
            Diagnostic::Ignored { key, reason } => write!(f, "option '{key}': {reason}"),
            Diagnostic::Clamped { key, value, used } => {
                write!(f, "option '{key}={value}' out of range; using {key}={used}")
            }
        }
    }
}

/// The result of parsing a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub options: Options,
    pub diagnostics: Vec<Diagnostic>,
}

/// Split a command line into tokens at unquoted whitespace; quotes are removed.
pub fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut have = false;
    for c in line.chars() {
        if c == '"' {
            in_quote = !in_quote;
            have = true;
        } else if c.is_whitespace() && !in_quote {
            if have {
                out.push(core::mem::take(&mut cur));
                have = false;
            }
        } else {
            cur.push(c);
            have = true;
        }
    }
    if have {
        out.push(cur);
    }
    out
}

/// Split a command line into words at unquoted whitespace, keeping the
/// quotes (for passing the words on to another parser, e.g. GRUB's).
pub fn tokenize_raw(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    for c in line.chars() {
        if c == '"' {
            in_quote = !in_quote;
        }
        if c.is_whitespace() && !in_quote {
            if !cur.is_empty() {
                out.push(core::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parse a number: decimal or `0x` hex.
pub fn parse_u64(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

/// Parse a size with an optional unit (`k`, `M`, `G`, `T`, `B`); a bare number is bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        b't' | b'T' => (&s[..s.len() - 1], 40),
        b'b' | b'B' if !s.starts_with("0x") && !s.starts_with("0X") => (&s[..s.len() - 1], 0),
        _ => (s, 0),
    };
    let n = parse_u64(num)?;
    n.checked_mul(1u64 << shift)
}

/// Format a byte count with the largest exact unit.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "k")] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{}", n >> shift, unit);
        }
    }
    format!("{n}")
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "on" | "true" | "enable" => Some(true),
        "0" | "no" | "off" | "false" | "disable" => Some(false),
        _ => None,
    }
}

/// Parse a `com1=`/`com2=` value: `<baud>[/<base-baud>][,[DPS][,[<io-base>][,<irq>...]]]`.
/// Returns the new configuration and notes about ignored parts.
fn parse_serial(value: &str, old: SerialConfig) -> Result<(SerialConfig, Vec<String>), String> {
    let mut cfg = old;
    let mut notes = Vec::new();
    let mut parts = value.split(',');
    let baud = parts.next().unwrap_or("");
    let baud = match baud.split_once('/') {
        Some((b, base)) => {
            if parse_u64(base).is_none() {
                return Err(format!("base baud '{}' is not a number", clip(base)));
            }
            notes
                .push("base baud ignored (the UART clock is assumed to be 1.8432 MHz)".to_string());
            b
        }
        None => baud,
    };
    match baud {
        "" => {}
        "auto" => notes.push("baud 'auto' not supported; keeping the current speed".to_string()),
        b => {
            let n = parse_u64(b).ok_or_else(|| format!("baud '{}' is not a number", clip(b)))?;
            if n == 0 || n > 115200 || 115200 % n != 0 {
                return Err(format!("baud {n} is not a divisor of 115200"));
            }
            cfg.baud = n as u32;
        }
    }
    if let Some(dps) = parts.next()
        && !dps.is_empty()
    {
        let b = dps.as_bytes();
        if b.len() != 3 {
            return Err(format!(
                "'{}' is not <data bits><parity><stop bits> such as 8n1",
                clip(dps)
            ));
        }
        cfg.data_bits = match b[0] {
            b'5'..=b'8' => b[0] - b'0',
            _ => return Err(format!("data bits '{}' not in 5..8", b[0] as char)),
        };
        cfg.parity = match b[1].to_ascii_lowercase() {
            b'n' => Parity::None,
            b'o' => Parity::Odd,
            b'e' => Parity::Even,
            b'm' => Parity::Mark,
            b's' => Parity::Space,
            _ => return Err(format!("parity '{}' not one of n,o,e,m,s", b[1] as char)),
        };
        cfg.stop_bits = match b[2] {
            b'1' | b'2' => b[2] - b'0',
            _ => return Err(format!("stop bits '{}' not 1 or 2", b[2] as char)),
        };
    }
    if let Some(io) = parts.next()
        && !io.is_empty()
    {
        let n = parse_u64(io).ok_or_else(|| format!("I/O base '{}' is not a number", clip(io)))?;
        if n == 0 || n > 0xfff8 {
            return Err(format!("I/O base {n:#x} out of range"));
        }
        cfg.io_base = n as u16;
    }
    let rest: Vec<&str> = parts.filter(|p| !p.is_empty()).collect();
    if !rest.is_empty() {
        notes.push(format!(
            "'{}' ignored (the console UART is polled)",
            clip(&rest.join(","))
        ));
    }
    Ok((cfg, notes))
}

fn parse_amount(v: &str) -> Result<MemSize, String> {
    let bad = || {
        format!(
            "'{}' is not an amount (SIZE, FRAC%, SIZE+FRAC%, or -AMOUNT)",
            clip(v)
        )
    };
    let (minus, body) = match v.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, v),
    };
    let percent = |p: &str| -> Result<u32, String> {
        match parse_u64(p) {
            Some(n) if n < 100 => Ok(n as u32),
            _ => Err(bad()),
        }
    };
    let mut m = MemSize {
        minus,
        ..Default::default()
    };
    match body.split_once('+') {
        Some((size, frac)) => {
            m.bytes = parse_size(size).ok_or_else(bad)?;
            m.percent = percent(frac.strip_suffix('%').ok_or_else(bad)?)?;
        }
        None => match body.strip_suffix('%') {
            Some(p) => m.percent = percent(p)?,
            None => m.bytes = parse_size(body).ok_or_else(bad)?,
        },
    }
    if !body.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(m)
}

fn parse_dom0_mem(value: &str) -> Result<Dom0Mem, String> {
    let mut m = Dom0Mem::default();
    for part in value.split(',') {
        let (slot, v) = if let Some(v) = part.strip_prefix("min:") {
            (&mut m.min, v)
        } else if let Some(v) = part.strip_prefix("max:") {
            (&mut m.max, v)
        } else {
            (&mut m.target, part)
        };
        *slot = Some(parse_amount(v)?);
    }
    Ok(m)
}

fn describe_amount(a: &MemSize) -> String {
    let mut s = String::new();
    if a.minus {
        s.push('-');
    }
    match (a.bytes, a.percent) {
        (b, 0) => s.push_str(&format_size(b)),
        (0, p) => s.push_str(&format!("{p}%")),
        (b, p) => s.push_str(&format!("{}+{p}%", format_size(b))),
    }
    s
}

fn describe_console(c: ConsoleTargets) -> String {
    match (c.com1, c.com2) {
        (true, true) => "com1,com2".into(),
        (true, false) => "com1".into(),
        (false, true) => "com2".into(),
        (false, false) => "none".into(),
    }
}

fn describe_dom0_mem(m: &Dom0Mem) -> String {
    let mut parts = Vec::new();
    if let Some(v) = m.min {
        parts.push(format!("min:{}", describe_amount(&v)));
    }
    if let Some(v) = m.max {
        parts.push(format!("max:{}", describe_amount(&v)));
    }
    if let Some(v) = m.target {
        parts.push(describe_amount(&v));
    }
    if parts.is_empty() {
        "<unset>".into()
    } else {
        parts.join(",")
    }
}

/// `BURST/MS`, or `0` for no limit.
fn describe_rate((b, ms): (u32, u64)) -> String {
    if b == 0 {
        "0".into()
    } else {
        format!("{b}/{ms}")
    }
}

/// Names of boolean options (for `key`, `no-key`).
const BOOLEANS: &[&str] = &["console_timestamps", "console_to_ring", "test_exit"];

/// Parse a command line. Never fails; see [`Parsed::diagnostics`].
pub fn parse(line: &str) -> Parsed {
    let mut o = Options::default();
    let mut d = Vec::new();
    for tok in tokenize(line) {
        let (raw_key, value) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok.as_str(), None),
        };
        let key: String = raw_key.replace('-', "_");
        let shown_key = clip(raw_key);
        let shown_val = value.map(clip).unwrap_or_default();
        let malformed = |reason: String, kept: String| Diagnostic::Malformed {
            key: shown_key.clone(),
            value: shown_val.clone(),
            reason,
            kept,
        };

        // Booleans: key, no-key, key=<bool>.
        let (bool_key, negated) = match key.strip_prefix("no_") {
            Some(rest) if BOOLEANS.contains(&rest) && value.is_none() => (rest, true),
            _ => (key.as_str(), false),
        };
        if BOOLEANS.contains(&bool_key) {
            let slot = match bool_key {
                "console_timestamps" => &mut o.console_timestamps,
                "console_to_ring" => &mut o.console_to_ring,
                _ => &mut o.test.exit,
            };
            match value {
                None => *slot = !negated,
                Some(v) => match parse_bool(v) {
                    Some(b) => *slot = b,
                    None => d.push(malformed(
                        "expected a boolean (yes/no, on/off, true/false, 1/0)".into(),
                        if *slot { "yes".into() } else { "no".into() },
                    )),
                },
            }
            continue;
        }

        let known = matches!(
            key.as_str(),
            "console"
                | "com1"
                | "com2"
                | "conring_size"
                | "loglvl"
                | "flask"
                | "dom0_mem"
                | "dom0_max_vcpus"
                | "audit_ratelimit"
                | "guest_console_ratelimit"
                | "maxcpus"
                | "conswitch"
                | "test_fault"
        );
        if !known {
            d.push(Diagnostic::Unknown { key: clip(&tok) });
            continue;
        }
        let Some(value) = value else {
            d.push(Diagnostic::Malformed {
                key: shown_key,
                value: String::new(),
                reason: "a value is required (key=value)".into(),
                kept: match key.as_str() {
                    "console" => describe_console(o.console),
                    "com1" => o.com1.to_string(),
                    "com2" => o.com2.to_string(),
                    "conring_size" => format_size(o.conring_size as u64),
                    "loglvl" => o.loglvl.name().into(),
                    "flask" => o.flask.name().into(),
                    "dom0_mem" => describe_dom0_mem(&o.dom0_mem),
                    "dom0_max_vcpus" => describe_dom0_vcpus(&o.dom0_max_vcpus),
                    "audit_ratelimit" => o
                        .audit_ratelimit
                        .map_or("64/1000".into(), |(b, ms)| format!("{b}/{ms}")),
                    "guest_console_ratelimit" => describe_rate(o.guest_console_ratelimit),
                    "maxcpus" => o.maxcpus.map_or("<all>".into(), |n| n.to_string()),
                    "conswitch" => o.conswitch.describe(),
                    _ => "<none>".into(),
                },
            });
            continue;
        };

        match key.as_str() {
            "console" => {
                let mut t = ConsoleTargets {
                    com1: false,
                    com2: false,
                };
                let mut bad = None;
                for item in value.split(',') {
                    match item {
                        "com1" => t.com1 = true,
                        "com2" => t.com2 = true,
                        "none" | "" => {}
                        "vga" | "dbgp" | "ehci" | "xhci" => d.push(Diagnostic::Ignored {
                            key: shown_key.clone(),
                            reason: format!("console '{item}' is not supported; ignored"),
                        }),
                        other => bad = Some(other),
                    }
                }
                match bad {
                    Some(b) => d.push(malformed(
                        format!("unknown console '{}'", clip(b)),
                        describe_console(o.console),
                    )),
                    None => o.console = t,
                }
            }
            "com1" | "com2" => {
                let slot = if key == "com1" {
                    &mut o.com1
                } else {
                    &mut o.com2
                };
                match parse_serial(value, *slot) {
                    Ok((cfg, notes)) => {
                        *slot = cfg;
                        for n in notes {
                            d.push(Diagnostic::Ignored {
                                key: shown_key.clone(),
                                reason: n,
                            });
                        }
                    }
                    Err(reason) => d.push(malformed(reason, slot.to_string())),
                }
            }
            "conring_size" => match parse_size(value) {
                Some(n) => {
                    let used = n.clamp(CONRING_MIN as u64, CONRING_MAX as u64) as usize;
                    if used as u64 != n {
                        d.push(Diagnostic::Clamped {
                            key: shown_key,
                            value: shown_val,
                            used: format_size(used as u64),
                        });
                    }
                    o.conring_size = used;
                }
                None => d.push(malformed(
                    "expected a size such as 128k or 1M".into(),
                    format_size(o.conring_size as u64),
                )),
            },
            "loglvl" => {
                let (lvl, rate) = match value.split_once('/') {
                    Some((l, r)) => (l, Some(r)),
                    None => (value, None),
                };
                match (
                    LogLevel::parse(lvl),
                    rate.map(|r| LogLevel::parse(r).is_some()),
                ) {
                    (Some(l), None | Some(true)) => {
                        o.loglvl = l;
                        if rate.is_some() {
                            d.push(Diagnostic::Ignored {
                                key: shown_key,
                                reason: "rate-limited level ignored (no rate limiting)".into(),
                            });
                        }
                    }
                    _ => d.push(malformed(
                        "expected none, error, warning, info, debug or all".into(),
                        o.loglvl.name().into(),
                    )),
                }
            }
            "flask" => {
                let m = match value {
                    "enforcing" => Some(FlaskMode::Enforcing),
                    "permissive" => Some(FlaskMode::Permissive),
                    "late" => Some(FlaskMode::Late),
                    "disabled" => Some(FlaskMode::Disabled),
                    _ => None,
                };
                match m {
                    Some(m) => {
                        o.flask = m;
                        o.flask_invalid = None;
                    }
                    // No diagnostic: the boot is refused with the reason
                    // (security::init), and nothing is "kept".
                    None => o.flask_invalid = Some(clip(value)),
                }
            }
            "dom0_mem" => match parse_dom0_mem(value) {
                Ok(m) => o.dom0_mem = m,
                Err(reason) => d.push(malformed(reason, describe_dom0_mem(&o.dom0_mem))),
            },
            "dom0_max_vcpus" => match parse_dom0_max_vcpus(value) {
                Ok(v) => o.dom0_max_vcpus = v,
                Err(reason) => d.push(malformed(
                    format!("{reason}: expected N, N-, -M or N-M"),
                    describe_dom0_vcpus(&o.dom0_max_vcpus),
                )),
            },
            "audit_ratelimit" => {
                let (b, ms) = match value.split_once('/') {
                    Some((b, ms)) => (parse_u64(b), parse_u64(ms)),
                    None => (parse_u64(value), Some(1000)),
                };
                match (b, ms) {
                    (Some(0), _) => o.audit_ratelimit = Some((u32::MAX, 1)),
                    (Some(b), Some(ms)) if b <= u32::MAX as u64 && ms >= 1 => {
                        o.audit_ratelimit = Some((b as u32, ms))
                    }
                    _ => d.push(malformed(
                        "expected BURST[/MILLISECONDS], or 0 for no limit".into(),
                        o.audit_ratelimit
                            .map_or("64/1000".into(), |(b, ms)| format!("{b}/{ms}")),
                    )),
                }
            }
            "guest_console_ratelimit" => {
                let (b, ms) = match value.split_once('/') {
                    Some((b, ms)) => (parse_u64(b), parse_u64(ms)),
                    None => (parse_u64(value), Some(1000)),
                };
                match (b, ms) {
                    (Some(0), _) => o.guest_console_ratelimit = (0, 1),
                    (Some(b), Some(ms))
                        if b <= u32::MAX as u64 && (1..=3_600_000).contains(&ms) =>
                    {
                        o.guest_console_ratelimit = (b as u32, ms)
                    }
                    _ => d.push(malformed(
                        "expected BURST[/MILLISECONDS] (at most an hour), or 0 for no limit".into(),
                        describe_rate(o.guest_console_ratelimit),
                    )),
                }
            }
            "conswitch" => {
                let b = value.as_bytes();
                match b {
                    [l] | [l, b'x'] if l.is_ascii_lowercase() => {
                        o.conswitch = ConSwitch {
                            letter: *l,
                            stay_with_xen: b.len() == 2,
                        }
                    }
                    _ => d.push(malformed(
                        "expected a letter a-z (CTRL-letter switches input), optionally followed by x (input stays with Warden at boot)".into(),
                        o.conswitch.describe(),
                    )),
                }
            }
            "maxcpus" => match parse_u64(value) {
                Some(n) if (1..=u32::MAX as u64).contains(&n) => o.maxcpus = Some(n as u32),
                _ => d.push(malformed(
                    "expected a CPU count of at least 1".into(),
                    o.maxcpus.map_or("<all>".into(), |n| n.to_string()),
                )),
            },
            "test_fault" => match TestFault::parse(value) {
                Some(f) => o.test.fault = Some(f),
                None => d.push(malformed(
                    "expected ud, panic, write_text, write_rodata or exec_data".into(),
                    "<none>".into(),
                )),
            },
            _ => unreachable_known(&mut d, &shown_key),
        }
    }
    Parsed {
        options: o,
        diagnostics: d,
    }
}

/// Keeps the match exhaustive without a panic path: a key listed as known but
/// not handled is reported like an unknown one.
fn unreachable_known(d: &mut Vec<Diagnostic>, key: &str) {
    d.push(Diagnostic::Unknown { key: key.into() });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn guest_console_options() {
        let o = parse("").options;
        assert_eq!(o.guest_console_ratelimit, GUEST_CONSOLE_RATELIMIT);
        assert!(!o.console_to_ring);
        let p = parse("guest_console_ratelimit=10/500 console_to_ring");
        assert_eq!(p.options.guest_console_ratelimit, (10, 500));
        assert!(p.options.console_to_ring);
        assert_eq!(
            parse("guest_console_ratelimit=0")
                .options
                .guest_console_ratelimit,
            (0, 1)
        );
        let p = parse("guest_console_ratelimit=5/0 console_to_ring=maybe");
        assert_eq!(p.options.guest_console_ratelimit, GUEST_CONSOLE_RATELIMIT);
        assert!(!p.options.console_to_ring);
        assert_eq!(p.diagnostics.len(), 2);
    }

    #[test]
    fn conswitch() {
        let o = parse("").options.conswitch;
        assert_eq!((o.code(), o.stay_with_xen), (1, false));
        let o = parse("conswitch=bx").options.conswitch;
        assert_eq!((o.letter, o.code(), o.stay_with_xen), (b'b', 2, true));
        for bad in ["conswitch=", "conswitch=A", "conswitch=ab", "conswitch=1"] {
            let p = parse(bad);
            assert_eq!(p.options.conswitch, ConSwitch::default(), "{bad}");
            assert_eq!(p.diagnostics.len(), 1, "{bad}");
        }
    }

    #[test]
    fn an_invalid_flask_mode_is_reported_once_by_the_refusal() {
        let p = parse("flask=bogus");
        assert_eq!(p.options.flask_invalid.as_deref(), Some("bogus"));
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    }

    #[test]
    fn audit_ratelimit() {
        assert_eq!(
            parse("audit_ratelimit=10/500").options.audit_ratelimit,
            Some((10, 500))
        );
        assert_eq!(
            parse("audit_ratelimit=5").options.audit_ratelimit,
            Some((5, 1000))
        );
        assert_eq!(
            parse("audit_ratelimit=0").options.audit_ratelimit,
            Some((u32::MAX, 1))
        );
        let p = parse("audit_ratelimit=x/0");
        assert_eq!(p.options.audit_ratelimit, None);
        assert_eq!(p.diagnostics.len(), 1);
    }

    #[test]
    fn dom0_vcpus_and_invalid_flask() {
        let v = |min, max| Dom0Vcpus { min, max };
        let p = parse("dom0_max_vcpus=2 flask=maybe");
        assert_eq!(p.options.dom0_max_vcpus, v(2, 2));
        assert_eq!(p.options.flask_invalid.as_deref(), Some("maybe"));
        let p = parse("dom0_max_vcpus=1-4 flask=maybe flask=late");
        assert_eq!(p.options.dom0_max_vcpus, v(1, 4));
        assert_eq!(p.options.flask_invalid, None, "a later valid value wins");
        assert_eq!(p.options.flask, FlaskMode::Late);
        // Xen's forms: 0 counts as 1; N- has no upper bound; -M no lower one.
        assert_eq!(parse("dom0_max_vcpus=0").options.dom0_max_vcpus, v(1, 1));
        assert_eq!(
            parse("dom0_max_vcpus=3-").options.dom0_max_vcpus,
            v(3, u32::MAX)
        );
        assert_eq!(parse("dom0_max_vcpus=-2").options.dom0_max_vcpus, v(1, 2));
        let p = parse("dom0_max_vcpus=2 dom0_max_vcpus=x-3");
        assert_eq!(
            p.options.dom0_max_vcpus,
            v(2, 2),
            "a bad value keeps the last"
        );
        assert_eq!(p.diagnostics.len(), 1);
        // The count: the CPUs, within the bounds and the limit.
        assert_eq!(Dom0Vcpus::default().count(4, 64), 4);
        assert_eq!(v(1, 4).count(2, 64), 2, "a range does not add vCPUs");
        assert_eq!(v(6, u32::MAX).count(2, 64), 6);
        assert_eq!(v(1, 1).count(8, 64), 1);
        assert_eq!(v(100, 100).count(2, 64), 64);
    }

    #[test]
    fn xen_example_line() {
        let p = parse(
            "console=com1 com1=115200,8n1 conring_size=128k loglvl=all flask=enforcing dom0_mem=512M",
        );
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let o = p.options;
        assert_eq!(
            o.console,
            ConsoleTargets {
                com1: true,
                com2: false
            }
        );
        assert_eq!(o.com1, SerialConfig::COM1);
        assert_eq!(o.conring_size, 128 * 1024);
        assert_eq!(o.loglvl, LogLevel::All);
        assert_eq!(o.flask, FlaskMode::Enforcing);
        assert_eq!(o.dom0_mem.target, Some(MemSize::bytes(512 << 20)));
    }

    #[test]
    fn defaults_for_empty_line() {
        let p = parse("   ");
        assert!(p.diagnostics.is_empty());
        assert_eq!(p.options, Options::default());
        assert!(Options::default().conring_size >= 64 * 1024);
    }

    #[test]
    fn unknown_options_are_reported_and_ignored() {
        let p = parse("frobnicate=7 loglvl=debug bogus");
        assert_eq!(p.options.loglvl, LogLevel::Debug);
        assert_eq!(
            p.diagnostics,
            vec![
                Diagnostic::Unknown {
                    key: "frobnicate=7".into()
                },
                Diagnostic::Unknown {
                    key: "bogus".into()
                }
            ]
        );
        assert_eq!(
            p.diagnostics[0].to_string(),
            "unknown option 'frobnicate=7' ignored"
        );
    }

    #[test]
    fn malformed_value_keeps_default() {
        let p = parse("conring_size=lots flask=maybe loglvl=loud com1=9600,9x1");
        let o = &p.options;
        assert_eq!(o.conring_size, CONRING_DEFAULT);
        assert_eq!(o.flask, FlaskMode::Enforcing);
        assert_eq!(o.loglvl, LogLevel::Info);
        assert_eq!(o.com1, SerialConfig::COM1);
        // flask=maybe is not a diagnostic: it stops the boot, with its own message.
        assert_eq!(p.diagnostics.len(), 3);
        let msg = p.diagnostics[0].to_string();
        assert_eq!(
            msg,
            "malformed value 'conring_size=lots': expected a size such as 128k or 1M; keeping conring_size=64k"
        );
        assert!(p.diagnostics[2].to_string().contains("data bits '9'"));
    }

    #[test]
    fn malformed_value_keeps_previous_value() {
        let p = parse("loglvl=debug loglvl=chatty");
        assert_eq!(p.options.loglvl, LogLevel::Debug);
        assert!(
            p.diagnostics[0]
                .to_string()
                .ends_with("keeping loglvl=debug")
        );
    }

    #[test]
    fn later_value_overrides() {
        assert_eq!(
            parse("flask=permissive flask=late").options.flask,
            FlaskMode::Late
        );
    }

    #[test]
    fn sizes_and_units() {
        assert_eq!(parse_size("128k"), Some(128 << 10));
        assert_eq!(parse_size("128K"), Some(128 << 10));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("3T"), Some(3 << 40));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4096B"), Some(4096));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size("0x1b"), Some(0x1b));
        assert_eq!(parse_size("0x10k"), Some(16 << 10));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("+1"), None);
        assert_eq!(parse_size("1.5M"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
        assert_eq!(parse_size("17179869184T"), None, "overflow");
        assert_eq!(format_size(128 << 10), "128k");
        assert_eq!(format_size(3 << 30), "3G");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn booleans_in_every_form() {
        assert!(!parse("no-console_timestamps").options.console_timestamps);
        assert!(!parse("no-console-timestamps").options.console_timestamps);
        assert!(!parse("console_timestamps=off").options.console_timestamps);
        assert!(
            parse("no-console_timestamps console_timestamps")
                .options
                .console_timestamps
        );
        assert!(parse("console_timestamps=1").options.console_timestamps);
        let p = parse("console_timestamps=perhaps");
        assert!(p.options.console_timestamps);
        assert!(matches!(p.diagnostics[0], Diagnostic::Malformed { .. }));
        // "no-" on a non-boolean is just an unknown option.
        assert!(matches!(
            parse("no-flask").diagnostics[0],
            Diagnostic::Unknown { .. }
        ));
        assert!(parse("test_exit").options.test.exit);
        assert!(!parse("test_exit no-test_exit").options.test.exit);
    }

    #[test]
    fn serial_syntax() {
        let p = parse("com1=9600,7e2,0x2e8 com2=57600");
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(
            p.options.com1,
            SerialConfig {
                baud: 9600,
                data_bits: 7,
                parity: Parity::Even,
                stop_bits: 2,
                io_base: 0x2e8
            }
        );
        assert_eq!(p.options.com2.baud, 57600);
        assert_eq!(p.options.com2.io_base, 0x2f8);
        let p = parse("com1=115200,8n1,0x3f8,4");
        assert_eq!(p.options.com1, SerialConfig::COM1);
        assert!(matches!(p.diagnostics[0], Diagnostic::Ignored { .. }));
        let p = parse("com1=115201");
        assert_eq!(p.options.com1, SerialConfig::COM1);
        assert!(p.diagnostics[0].to_string().contains("not a divisor"));
        assert!(matches!(
            parse("com1=0").diagnostics[0],
            Diagnostic::Malformed { .. }
        ));
        assert!(matches!(
            parse("com1=115200,8n1,0x0").diagnostics[0],
            Diagnostic::Malformed { .. }
        ));
        assert_eq!(SerialConfig::COM1.to_string(), "115200,8n1,0x3f8");
    }

    #[test]
    fn console_list() {
        let p = parse("console=com2");
        assert_eq!(
            p.options.console,
            ConsoleTargets {
                com1: false,
                com2: true
            }
        );
        let p = parse("console=vga,com1");
        assert!(p.options.console.com1);
        assert!(matches!(p.diagnostics[0], Diagnostic::Ignored { .. }));
        let p = parse("console=tty0");
        assert!(p.options.console.com1, "default kept");
        assert!(matches!(p.diagnostics[0], Diagnostic::Malformed { .. }));
        let p = parse("console=none");
        assert!(!p.options.console.com1 && !p.options.console.com2);
    }

    #[test]
    fn conring_clamped() {
        let p = parse("conring_size=1k");
        assert_eq!(p.options.conring_size, CONRING_MIN);
        assert!(matches!(p.diagnostics[0], Diagnostic::Clamped { .. }));
        let p = parse("conring_size=1T");
        assert_eq!(p.options.conring_size, CONRING_MAX);
    }

    #[test]
    fn dom0_mem_forms() {
        let p = parse("dom0_mem=min:128M,max:1G,512M");
        let m = p.options.dom0_mem;
        assert_eq!(
            m,
            Dom0Mem {
                target: Some(MemSize::bytes(512 << 20)),
                min: Some(MemSize::bytes(128 << 20)),
                max: Some(MemSize::bytes(1 << 30))
            }
        );
        const G: u64 = 1 << 30;
        const M: u64 = 1 << 20;
        assert_eq!(m.bytes(4 * G, 64 * M), 512 * M);
        assert_eq!(m.bytes(256 * M, 64 * M), 256 * M, "at most what is free");
        // Xen's amounts: a fraction of the available memory, a size plus a
        // fraction, all but an amount.
        let amt = |v: &str| parse(&format!("dom0_mem={v}")).options.dom0_mem;
        assert_eq!(amt("25%").bytes(4 * G, 0), G);
        assert_eq!(amt("1G+10%").bytes(10 * G, 0), 2 * G);
        assert_eq!(amt("-512M").bytes(2 * G, 0), 3 * 512 * M);
        assert_eq!(amt("-10%").bytes(10 * G, 0), 9 * G);
        assert_eq!(
            amt("-3G").bytes(2 * G, 64 * M),
            64 * M,
            "nothing left: the default"
        );
        assert_eq!(amt("max:50%").bytes(64 * M, 64 * M), 32 * M);
        assert_eq!(amt("min:1G").bytes(4 * G, 64 * M), G);
        assert_eq!(Dom0Mem::default().bytes(4 * G, 64 * M), 64 * M);
        // A minimum above the maximum loses (Xen's note 3).
        assert_eq!(amt("min:2G,max:1G").bytes(4 * G, 64 * M), G);
        for bad in ["100%", "10%+1G", "x", "-", "1G+", "1G+5", "%"] {
            let p = parse(&format!("dom0_mem={bad}"));
            assert_eq!(p.options.dom0_mem, Dom0Mem::default(), "{bad}");
            assert_eq!(p.diagnostics.len(), 1, "{bad}");
        }
        assert_eq!(describe_dom0_mem(&amt("min:1G,-512M")), "min:1G,-512M");
        assert_eq!(describe_dom0_mem(&amt("1G+5%")), "1G+5%");
    }

    #[test]
    fn missing_value_reported() {
        let p = parse("loglvl flask= maxcpus=0");
        // An empty flask= is not a mode: the boot will be refused.
        assert_eq!(
            p.options,
            Options {
                flask_invalid: Some(String::new()),
                ..Options::default()
            }
        );
        assert_eq!(p.diagnostics.len(), 2);
        assert_eq!(
            p.diagnostics[0].to_string(),
            "malformed value 'loglvl=': a value is required (key=value); keeping loglvl=info"
        );
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(
            tokenize(r#"a="x y" b   c"#),
            vec!["a=x y".to_string(), "b".into(), "c".into()]
        );
        assert_eq!(tokenize(r#""""#), vec![String::new()]);
        assert_eq!(
            tokenize(r#""unterminated"#),
            vec!["unterminated".to_string()]
        );
    }

    #[test]
    fn raw_tokens_keep_quotes() {
        assert_eq!(
            tokenize_raw(r#" a="x y"  b "#),
            vec![r#"a="x y""#.to_string(), "b".into()]
        );
        assert!(tokenize_raw("   ").is_empty());
    }

    #[test]
    fn loglvl_with_rate_level() {
        let p = parse("loglvl=all/warning");
        assert_eq!(p.options.loglvl, LogLevel::All);
        assert!(matches!(p.diagnostics[0], Diagnostic::Ignored { .. }));
        let p = parse("loglvl=all/shouty");
        assert_eq!(p.options.loglvl, LogLevel::Info);
    }

    #[test]
    fn test_fault_values() {
        assert_eq!(
            parse("test_fault=write_text").options.test.fault,
            Some(TestFault::WriteText)
        );
        assert_eq!(parse("test_fault=nope").options.test.fault, None);
        assert!(!parse("").options.test.any());
    }

    #[test]
    fn long_garbage_is_clipped_in_messages() {
        let long = "x".repeat(10_000);
        let p = parse(&format!("{long}=1 flask={long}"));
        for diag in &p.diagnostics {
            assert!(diag.to_string().len() < 400, "{}", diag);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn never_panics_on_arbitrary_text(s in ".{0,200}") {
            let p = parse(&s);
            for d in &p.diagnostics { let _ = d.to_string(); }
        }

        #[test]
        fn never_panics_on_option_like_text(
            parts in proptest::collection::vec(
                ("(no-)?(console|com1|com2|conring_size|loglvl|flask|dom0_mem|dom0_max_vcpus|audit_ratelimit|guest_console_ratelimit|console_to_ring|maxcpus|test_fault|test_exit|console_timestamps|x)",
                 proptest::option::of("[0-9a-zA-Z,:/x=.\"-]{0,20}")), 0..8)
        ) {
            let line: Vec<String> = parts.iter().map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            }).collect();
            let p = parse(&line.join(" "));
            prop_assert!(p.options.conring_size >= CONRING_MIN && p.options.conring_size <= CONRING_MAX);
            prop_assert!(p.options.com1.baud > 0 && 115200 % p.options.com1.baud == 0);
            for d in &p.diagnostics { let _ = d.to_string(); }
        }

        #[test]
        fn sizes_round_trip(n in 0u64..(1u64 << 50)) {
            prop_assert_eq!(parse_size(&format_size(n)), Some(n));
        }
    }
}
