//! Booting images in QEMU (TCG, an SVM+NPT CPU), with the serial console on
//! stdout, either inherited (`cargo xtask run`) or captured with a timeout
//! (tests, benchmarks).

use crate::{Error, Result};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The default CPU model: SVM with nested paging, and nothing TCG handles badly.
pub const DEFAULT_CPU: &str = "qemu64,+svm,+npt";

/// A boot module: a file and its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: PathBuf,
    pub args: String,
}

impl Module {
    /// Parse `FILE[:ARGS]`.
    pub fn parse(spec: &str) -> Module {
        match spec.split_once(':') {
            Some((p, a)) => Module {
                path: p.into(),
                args: a.into(),
            },
            None => Module {
                path: spec.into(),
                args: String::new(),
            },
        }
    }
}

/// How to boot.
#[derive(Debug, Clone)]
pub enum Boot {
    /// QEMU `-kernel` (Multiboot 1) with `-append` and `-initrd` modules.
    Kernel {
        image: PathBuf,
        cmdline: String,
        modules: Vec<Module>,
    },
    /// A GRUB ISO (Multiboot 2).
    Iso(PathBuf),
}

/// A QEMU machine.
#[derive(Debug, Clone)]
pub struct Machine {
    pub boot: Boot,
    pub smp: u32,
    pub memory_mib: u32,
    pub cpu: String,
    /// Extra QEMU arguments (e.g. `-icount shift=0`).
    pub extra: Vec<String>,
    /// Multi-threaded TCG (one host thread per CPU). Off by default: QEMU
    /// 7.2's multi-threaded TCG occasionally corrupts nested-SVM state
    /// (docs/ARCHITECTURE.md, "Known issues"), and on a busy 2-core host
    /// single-threaded round-robin is also faster.
    pub mttcg: bool,
}

impl Machine {
    pub fn new(boot: Boot) -> Machine {
        Machine {
            boot,
            smp: 2,
            memory_mib: 512,
            cpu: DEFAULT_CPU.into(),
            extra: Vec::new(),
            mttcg: false,
        }
    }

    /// The QEMU command.
    pub fn command(&self) -> Command {
        let mut c = Command::new("qemu-system-x86_64");
        let accel = if self.mttcg {
            "tcg,thread=multi"
        } else {
            "tcg,thread=single"
        };
        c.args(["-accel", accel, "-cpu", &self.cpu])
            .args(["-smp", &self.smp.to_string()])
            .args(["-m", &self.memory_mib.to_string()])
            .args([
                "-serial",
                "stdio",
                "-display",
                "none",
                "-monitor",
                "none",
                "-no-reboot",
            ])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        match &self.boot {
            Boot::Kernel {
                image,
                cmdline,
                modules,
            } => {
                c.arg("-kernel").arg(image).arg("-append").arg(cmdline);
                if !modules.is_empty() {
                    // QEMU splits -initrd at commas; a literal comma is written ",,".
                    let list: Vec<String> = modules
                        .iter()
                        .map(|m| {
                            let mut s = m.path.to_string_lossy().replace(',', ",,");
                            if !m.args.is_empty() {
                                s.push(' ');
                                s.push_str(&m.args.replace(',', ",,"));
                            }
                            s
                        })
                        .collect();
                    c.arg("-initrd").arg(list.join(","));
                }
            }
            Boot::Iso(iso) => {
                c.arg("-cdrom").arg(iso).args(["-boot", "d"]);
            }
        }
        c.args(&self.extra);
        c
    }
}

/// What a captured run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// QEMU's exit status, or `None` if it was killed at the timeout.
    pub status: Option<i32>,
    pub timed_out: bool,
    /// Everything written to the serial port.
    pub serial: String,
    /// QEMU's own stderr.
    pub stderr: String,
    /// When `watch` first appeared on the serial port, from QEMU's start.
    pub watch_seen: Option<Duration>,
    pub elapsed: Duration,
    /// Every complete serial line (without its line end) with the host
    /// time, from QEMU's start, at which its newline arrived.
    pub lines: Vec<(Duration, String)>,
    /// The [`Options::stop_on`] string that ended the run (QEMU killed).
    pub stopped_on: Option<String>,
}

impl Outcome {
    /// When the first serial line containing `s` arrived (host time from
    /// QEMU's start).
    pub fn line_time(&self, s: &str) -> Option<Duration> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(s))
            .map(|(t, _)| *t)
    }
}

/// Bytes to type on the serial console once `after` has appeared on it.
#[derive(Debug, Clone)]
pub struct Input {
    pub after: String,
    pub bytes: Vec<u8>,
}

/// How to watch a captured run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A string whose first appearance is timed ([`Outcome::watch_seen`]).
    pub watch: Option<String>,
    /// Bytes to type once a trigger appears, in order: each input waits
    /// for its trigger after the one before it was typed.
    pub input: Vec<Input>,
    /// Strings that end the run at once (QEMU is killed) when they appear on
    /// the serial port: fatal messages, so a test does not wait for its
    /// timeout ([`Outcome::stopped_on`]).
    pub stop_on: Vec<String>,
}

/// Run a QEMU command, capturing serial output, killing it after `timeout`.
/// `watch`: a string whose first appearance is timed.
pub fn run_captured(cmd: Command, timeout: Duration, watch: Option<&str>) -> Result<Outcome> {
    run_with_input(cmd, timeout, watch, None)
}

/// [`run_captured`], typing `input` on the serial console when its trigger appears.
pub fn run_with_input(
    cmd: Command,
    timeout: Duration,
    watch: Option<&str>,
    input: Option<Input>,
) -> Result<Outcome> {
    run_with(
        cmd,
        timeout,
        Options {
            watch: watch.map(String::from),
            input: input.into_iter().collect(),
            stop_on: Vec::new(),
        },
    )
}

/// What the serial reader thread collects.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    /// The line being received.
    line: Vec<u8>,
    lines: Vec<(Duration, String)>,
    seen: Option<Duration>,
    stopped_on: Option<String>,
}

/// Run a QEMU command, capturing serial output with line timestamps, killing
/// it after `timeout` or when one of `opts.stop_on` appears.
pub fn run_with(mut cmd: Command, timeout: Duration, opts: Options) -> Result<Outcome> {
    let Options {
        watch,
        input,
        stop_on,
    } = opts;
    let mut input: std::collections::VecDeque<Input> = input.into();
    cmd.stdin(if !input.is_empty() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        Error(format!(
            "cannot start qemu-system-x86_64 ({e}); install it with: apt-get install -y qemu-system-x86"
        ))
    })?;
    let cap = Arc::new(Mutex::new(Capture::default()));
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| Error("no stdout pipe".into()))?;
    let mut err = child
        .stderr
        .take()
        .ok_or_else(|| Error("no stderr pipe".into()))?;
    let cap2 = cap.clone();
    // The typist: types what the reader hands it, slowly (the guest polls
    // the UART's 16-byte FIFO), on its own thread so the reader never stops
    // reading (and timing) the serial output while typing.
    let typist = child.stdin.take().map(|mut w| {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            use std::io::Write;
            for bytes in rx {
                for chunk in bytes.chunks(8) {
                    let _ = w.write_all(chunk);
                    let _ = w.flush();
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        });
        tx
    });
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = start.elapsed();
                    let mut c = cap2.lock().unwrap_or_else(|p| p.into_inner());
                    let c = &mut *c;
                    c.bytes.extend_from_slice(&buf[..n]);
                    for &b in &buf[..n] {
                        if b == b'\n' {
                            let l = String::from_utf8_lossy(&c.line)
                                .trim_end_matches('\r')
                                .to_string();
                            c.lines.push((now, l));
                            c.line.clear();
                        } else {
                            c.line.push(b);
                        }
                    }
                    // Only the tail can hold a new match: look at what came
                    // now plus the longest pattern's length before it.
                    let tail = |len: usize| {
                        let from = c.bytes.len().saturating_sub(n + len);
                        &c.bytes[from..]
                    };
                    let has = |hay: &[u8], s: &str| hay.windows(s.len()).any(|x| x == s.as_bytes());
                    if let Some(i) = input.front()
                        && has(tail(i.after.len()), &i.after)
                    {
                        if let Some(t) = &typist {
                            let _ = t.send(i.bytes.clone());
                        }
                        input.pop_front();
                    }
                    if let Some(w) = &watch
                        && c.seen.is_none()
                        && has(tail(w.len()), w)
                    {
                        c.seen = Some(now);
                    }
                    if c.stopped_on.is_none()
                        && let Some(s) = stop_on.iter().find(|s| has(tail(s.len()), s))
                    {
                        c.stopped_on = Some(s.clone());
                    }
                }
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st.code();
        }
        let stop = cap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopped_on
            .is_some();
        if stop {
            // Let the rest of the message (a panic's backtrace) arrive.
            std::thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let _ = reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    let mut c = std::mem::take(&mut *cap.lock().unwrap_or_else(|p| p.into_inner()));
    if !c.line.is_empty() {
        let l = String::from_utf8_lossy(&c.line).into_owned();
        c.lines.push((elapsed, l));
    }
    Ok(Outcome {
        status,
        timed_out,
        serial: String::from_utf8_lossy(&c.bytes).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        watch_seen: c.seen,
        elapsed,
        lines: c.lines,
        stopped_on: c.stopped_on,
    })
}

/// How an interactive run ended.
#[derive(Debug, Clone, Default)]
pub struct Interactive {
    /// QEMU's exit status (None if stopped: at the timeout, or by this
    /// function once Warden halted the machine).
    pub status: Option<i32>,
    /// The reason of a refused boot, from the serial console's
    /// `*** Warden cannot boot: REASON` line.
    pub refusal: Option<String>,
    /// Warden halted the machine (`*** Warden stopped: the machine is
    /// halted.`, e.g. after dom0 powered off); QEMU was then stopped.
    pub halted: bool,
    /// The status a Linux dom0's `--exec` command ended with, from the
    /// init's `dom0: exec status N` (the dom0 image) or `warden-init: exec
    /// status N` (the test initramfs) line.
    pub exec_status: Option<i32>,
    /// A fatal Linux message seen on the console ([`LINUX_FATAL`]).
    pub linux_fatal: Option<String>,
    /// Stopped at the timeout.
    pub timed_out: bool,
}

/// Warden's last line before it halts the machine.
pub const HALTED: &str = "*** Warden stopped: the machine is halted.";

/// The lines a Linux init prints after an `--exec` command (`/etc/warden-exec`):
/// the dom0 image's and the test initramfs's.
pub const EXEC_STATUS: &[&str] = &["dom0: exec status ", "warden-init: exec status "];

/// Linux messages after which a boot cannot be trusted to go on.
pub const LINUX_FATAL: &[&str] = &[
    "Kernel panic",
    "BUG:",
    "stack guard page",
    "Fatal exception in interrupt",
];

/// The reason in a `*** Warden cannot boot: REASON` line.
pub fn refusal_reason(line: &str) -> Option<String> {
    const MARK: &str = "*** Warden cannot boot: ";
    line.find(MARK)
        .map(|i| line[i + MARK.len()..].trim_end().to_string())
}

/// The status in a `dom0: exec status N` or `warden-init: exec status N` line.
pub fn exec_status(line: &str) -> Option<i32> {
    EXEC_STATUS.iter().find_map(|m| {
        let i = line.find(m)?;
        line[i + m.len()..].trim().parse().ok()
    })
}

/// What the serial tee of an interactive run has seen.
#[derive(Default)]
struct Seen {
    refusal: Option<String>,
    halted: bool,
    exec_status: Option<i32>,
    linux_fatal: Option<String>,
}

impl Seen {
    fn line(&mut self, l: &str, watch_linux: bool) {
        if self.refusal.is_none() {
            self.refusal = refusal_reason(l);
        }
        if l.contains(HALTED) {
            self.halted = true;
        }
        if self.exec_status.is_none() {
            self.exec_status = exec_status(l);
        }
        if watch_linux && self.linux_fatal.is_none() {
            self.linux_fatal = LINUX_FATAL
                .iter()
                .find(|f| l.contains(*f))
                .map(|_| l.trim().to_string());
        }
    }
}

/// Run QEMU with the serial console on this terminal (serial output is
/// copied to stdout as it comes, and watched for a refused boot); stop it
/// after `timeout` if given, and once Warden has halted the machine (QEMU
/// gets a second to exit by itself: a refused boot exits with its code).
/// `batch`: stdin is not the console's (`--exec`), and a fatal Linux
/// message ([`LINUX_FATAL`]) stops QEMU too.
pub fn run_interactive(
    mut cmd: Command,
    timeout: Option<Duration>,
    batch: bool,
) -> Result<Interactive> {
    use std::io::Write;
    cmd.stdout(Stdio::piped());
    if batch {
        cmd.stdin(Stdio::null());
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        Error(format!(
            "cannot start qemu-system-x86_64 ({e}); install it with: apt-get install -y qemu-system-x86"
        ))
    })?;
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| Error("no stdout pipe".into()))?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen2 = seen.clone();
    let tee = std::thread::spawn(move || {
        let mut line = Vec::new();
        let mut buf = [0u8; 4096];
        let stdout = std::io::stdout();
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut o = stdout.lock();
                    let _ = o.write_all(&buf[..n]);
                    let _ = o.flush();
                    for &b in &buf[..n] {
                        if b == b'\n' {
                            seen2
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .line(&String::from_utf8_lossy(&line), batch);
                            line.clear();
                        } else if b != b'\r' && line.len() < 4096 {
                            line.push(b);
                        }
                    }
                }
            }
        }
    });
    let mut stop_at: Option<Instant> = None;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st.code();
        }
        {
            let s = seen.lock().unwrap_or_else(|p| p.into_inner());
            if stop_at.is_none() && (s.halted || s.linux_fatal.is_some()) {
                // Let QEMU exit by itself (a refused boot's code) and the
                // rest of a panic message arrive.
                stop_at = Some(Instant::now() + Duration::from_secs(2));
            }
        }
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = tee.join();
    let s = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Interactive {
        status,
        refusal: s.refusal,
        halted: s.halted,
        exec_status: s.exec_status,
        linux_fatal: s.linux_fatal,
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_spec() {
        assert_eq!(
            Module::parse("a.bin:x=1 y"),
            Module {
                path: "a.bin".into(),
                args: "x=1 y".into()
            }
        );
        assert_eq!(Module::parse("a.bin").args, "");
    }

    #[test]
    fn command_line_for_kernel_boot() {
        let m = Machine::new(Boot::Kernel {
            image: "/img".into(),
            cmdline: "loglvl=all".into(),
            modules: vec![Module::parse("/a"), Module::parse("/b,c:x=1,2")],
        });
        let c = m.command();
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-cpu qemu64,+svm,+npt"));
        assert!(joined.contains("-smp 2 -m 512"));
        assert!(joined.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(joined.contains("-no-reboot"));
        let i = args.iter().position(|a| a == "-initrd").unwrap();
        assert_eq!(args[i + 1], "/a,/b,,c x=1,,2");
    }

    #[test]
    fn lines_are_timestamped_and_stop_on_ends_the_run() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo first; sleep 1; printf 'second\\r\\n'; echo Kernel panic - x; exec sleep 60",
        ]);
        let o = run_with(
            c,
            Duration::from_secs(50),
            Options {
                stop_on: vec!["Kernel panic".into()],
                ..Options::default()
            },
        )
        .unwrap();
        assert!(!o.timed_out);
        assert_eq!(o.stopped_on.as_deref(), Some("Kernel panic"));
        assert!(o.elapsed < Duration::from_secs(30), "{:?}", o.elapsed);
        let lines: Vec<&str> = o.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines, ["first", "second", "Kernel panic - x"]);
        let (t1, t2) = (
            o.line_time("first").unwrap(),
            o.line_time("second").unwrap(),
        );
        assert!(t2 - t1 >= Duration::from_millis(900), "{t1:?} {t2:?}");
        assert_eq!(o.line_time("third"), None);
    }

    #[test]
    fn inputs_are_typed_in_order_each_after_its_trigger() {
        // A "guest" that echoes each line it reads: the second input's
        // trigger is the echo of the first, so typing it early (or both at
        // the first trigger) would reorder or lose a line.
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo ready; read a; echo got-$a; read b; echo got-$b; echo Kernel panic - done; exec sleep 60",
        ]);
        let o = run_with(
            c,
            Duration::from_secs(50),
            Options {
                input: vec![
                    Input {
                        after: "ready".into(),
                        bytes: b"one\n".to_vec(),
                    },
                    Input {
                        after: "got-one".into(),
                        bytes: b"two\n".to_vec(),
                    },
                ],
                stop_on: vec!["Kernel panic".into()],
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(o.stopped_on.as_deref(), Some("Kernel panic"));
        let lines: Vec<&str> = o.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            lines,
            ["ready", "got-one", "got-two", "Kernel panic - done"]
        );
    }

    #[test]
    fn lines_are_read_and_timed_while_an_input_is_typed() {
        // 128 bytes take 16 chunks of 300 ms to type (4.8 s); the line
        // printed a second after the trigger must be timed when it comes,
        // not when the typing ends.
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo ready; sleep 1; echo later; sleep 1; echo Kernel panic - done; exec sleep 60",
        ]);
        let o = run_with(
            c,
            Duration::from_secs(50),
            Options {
                input: vec![Input {
                    after: "ready".into(),
                    bytes: vec![b'x'; 128],
                }],
                stop_on: vec!["Kernel panic".into()],
                ..Options::default()
            },
        )
        .unwrap();
        let (a, b) = (o.line_time("ready").unwrap(), o.line_time("later").unwrap());
        assert!(b - a < Duration::from_millis(3500), "{a:?} {b:?}");
    }

    #[test]
    fn refusal_reason_is_read_from_the_serial_line() {
        assert_eq!(
            refusal_reason("[    0.1] ERROR *** Warden cannot boot: invalid input: flask=x: no\r")
                .as_deref(),
            Some("invalid input: flask=x: no")
        );
        assert_eq!(refusal_reason("[    0.1] INFO  Warden ready"), None);
    }
}
