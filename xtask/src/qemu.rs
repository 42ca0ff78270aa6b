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
}

/// Bytes to type on the serial console once `after` has appeared on it.
#[derive(Debug, Clone)]
pub struct Input {
    pub after: String,
    pub bytes: Vec<u8>,
}

/// Run a QEMU command, capturing serial output, killing it after `timeout`.
/// `watch`: a string whose first appearance is timed.
pub fn run_captured(cmd: Command, timeout: Duration, watch: Option<&str>) -> Result<Outcome> {
    run_with_input(cmd, timeout, watch, None)
}

/// [`run_captured`], typing `input` on the serial console when its trigger appears.
pub fn run_with_input(
    mut cmd: Command,
    timeout: Duration,
    watch: Option<&str>,
    input: Option<Input>,
) -> Result<Outcome> {
    cmd.stdin(if input.is_some() {
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
    let serial = Arc::new(Mutex::new(Vec::<u8>::new()));
    let seen = Arc::new(Mutex::new(None::<Duration>));
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| Error("no stdout pipe".into()))?;
    let mut err = child
        .stderr
        .take()
        .ok_or_else(|| Error("no stderr pipe".into()))?;
    let (s2, seen2, watch2) = (serial.clone(), seen.clone(), watch.map(String::from));
    let mut stdin = child.stdin.take();
    let mut input = input;
    let reader = std::thread::spawn(move || {
        use std::io::Write;
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut s = s2.lock().unwrap_or_else(|p| p.into_inner());
                    s.extend_from_slice(&buf[..n]);
                    if let Some(i) = &input
                        && s.windows(i.after.len()).any(|x| x == i.after.as_bytes())
                    {
                        if let Some(w) = stdin.as_mut() {
                            // Type slowly: the guest polls the UART's 16-byte FIFO.
                            for chunk in i.bytes.chunks(8) {
                                let _ = w.write_all(chunk);
                                let _ = w.flush();
                                std::thread::sleep(Duration::from_millis(300));
                            }
                        }
                        input = None;
                    }
                    if let Some(w) = &watch2 {
                        let mut seen = seen2.lock().unwrap_or_else(|p| p.into_inner());
                        if seen.is_none() && s.windows(w.len()).any(|x| x == w.as_bytes()) {
                            *seen = Some(start.elapsed());
                        }
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
    let serial =
        String::from_utf8_lossy(&serial.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let watch_seen = *seen.lock().unwrap_or_else(|p| p.into_inner());
    Ok(Outcome {
        status,
        timed_out,
        serial,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        watch_seen,
        elapsed,
    })
}

/// How an interactive run ended.
#[derive(Debug, Clone)]
pub struct Interactive {
    /// QEMU's exit status (None if stopped at the timeout).
    pub status: Option<i32>,
    /// The reason of a refused boot, from the serial console's
    /// `*** Warden cannot boot: REASON` line.
    pub refusal: Option<String>,
}

/// The reason in a `*** Warden cannot boot: REASON` line.
pub fn refusal_reason(line: &str) -> Option<String> {
    const MARK: &str = "*** Warden cannot boot: ";
    line.find(MARK)
        .map(|i| line[i + MARK.len()..].trim_end().to_string())
}

/// Run QEMU with the serial console on this terminal (serial output is
/// copied to stdout as it comes, and watched for a refused boot); stop it
/// after `timeout` if given.
pub fn run_interactive(mut cmd: Command, timeout: Option<Duration>) -> Result<Interactive> {
    use std::io::Write;
    cmd.stdout(Stdio::piped());
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
    let tee = std::thread::spawn(move || {
        let mut refusal = None;
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
                            if refusal.is_none() {
                                refusal = refusal_reason(&String::from_utf8_lossy(&line));
                            }
                            line.clear();
                        } else if b != b'\r' && line.len() < 4096 {
                            line.push(b);
                        }
                    }
                }
            }
        }
        refusal
    });
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st.code();
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let refusal = tee.join().unwrap_or(None);
    Ok(Interactive { status, refusal })
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
    fn refusal_reason_is_read_from_the_serial_line() {
        assert_eq!(
            refusal_reason("[    0.1] ERROR *** Warden cannot boot: invalid input: flask=x: no\r")
                .as_deref(),
            Some("invalid input: flask=x: no")
        );
        assert_eq!(refusal_reason("[    0.1] INFO  Warden ready"), None);
    }
}
