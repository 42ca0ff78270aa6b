//! Which QEMU boots the test suite's time goes to: each boot of the QEMU
//! tests appends one line (its test binary, its test, the seconds QEMU ran
//! while holding its slot, its vCPUs) to the file named by
//! [`ENV`], which `cargo xtask test` sets; the suite's report then sums the
//! machine time per test binary and lists the longest boots (with their
//! vCPUs: TCG runs a busy vCPU on a host CPU of its own), which is what the
//! QEMU phase's wall time is made of once every slot is busy.

use std::io::Write;
use std::path::Path;

/// The variable naming the log file.
pub const ENV: &str = "WARDEN_BOOT_LOG";

/// One boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Boot {
    pub binary: String,
    pub test: String,
    pub secs: f64,
    pub smp: u32,
}

/// Append a boot to the log, if [`ENV`] names one (never fails a test).
pub fn record(b: &Boot) {
    let Ok(path) = std::env::var(ENV) else {
        return;
    };
    let line = format!(
        "{:.2}\t{}\t{}\t{}\n",
        b.secs,
        b.smp,
        clean(&b.binary),
        clean(&b.test)
    );
    // One write of one short line to a file opened for appending: lines of
    // boots ending at once in several processes do not interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

fn clean(s: &str) -> String {
    s.replace(['\t', '\n'], " ")
}

/// The boots in a log's text (lines that do not parse are skipped).
pub fn parse(text: &str) -> Vec<Boot> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, '\t');
            let secs = f.next()?.parse().ok()?;
            let smp = f.next()?.parse().ok()?;
            Some(Boot {
                secs,
                smp,
                binary: f.next()?.to_string(),
                test: f.next()?.to_string(),
            })
        })
        .collect()
}

/// The report: machine time (seconds QEMU ran) per binary, most first, and
/// the `top` longest boots.
pub fn report(boots: &[Boot], top: usize) -> String {
    if boots.is_empty() {
        return String::new();
    }
    let cost = |b: &Boot| b.secs;
    let mut per: Vec<(String, f64, usize)> = Vec::new();
    for b in boots {
        match per.iter_mut().find(|p| p.0 == b.binary) {
            Some(p) => {
                p.1 += cost(b);
                p.2 += 1;
            }
            None => per.push((b.binary.clone(), cost(b), 1)),
        }
    }
    per.sort_by(|x, y| y.1.total_cmp(&x.1));
    let total: f64 = boots.iter().map(cost).sum();
    let mut s = format!(
        "xtask: QEMU machine time: {total:.0} s in {} boots\n",
        boots.len()
    );
    for (name, secs, n) in &per {
        s += &format!("  {secs:>8.1} s  {n:>3} boots  {name}\n");
    }
    let mut longest: Vec<&Boot> = boots.iter().collect();
    longest.sort_by(|x, y| cost(y).total_cmp(&cost(x)));
    s += "xtask: longest boots\n";
    for b in longest.iter().take(top) {
        s += &format!("  {:>8.1} s x{}  {} {}\n", b.secs, b.smp, b.binary, b.test);
    }
    s
}

/// The report for the log file at `path` (empty if there is none).
pub fn report_file(path: &Path, top: usize) -> String {
    std::fs::read_to_string(path)
        .map(|t| report(&parse(&t), top))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_the_report_ranks_by_machine_time() {
        let boots = [
            Boot {
                binary: "linux".into(),
                test: "a\tb".into(),
                secs: 10.0,
                smp: 2,
            },
            Boot {
                binary: "svm".into(),
                test: "c".into(),
                secs: 15.0,
                smp: 1,
            },
            Boot {
                binary: "linux".into(),
                test: "d".into(),
                secs: 1.0,
                smp: 1,
            },
        ];
        let text: String = boots
            .iter()
            .map(|b| {
                format!(
                    "{:.2}\t{}\t{}\t{}\n",
                    b.secs,
                    b.smp,
                    b.binary,
                    clean(&b.test)
                )
            })
            .collect();
        let parsed = parse(&format!("{text}garbage\n"));
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].test, "a b");
        let r = report(&parsed, 2);
        assert!(r.contains("26 s in 3 boots"), "{r}");
        let linux = r.find("linux").unwrap();
        let svm = r.find("svm").unwrap();
        assert!(svm < linux, "svm (15 s) ranks above linux (11 s):\n{r}");
        assert!(r.contains("10.0 s x2  linux a b"), "{r}");
        assert!(!r.contains("linux d"), "only the top 2 boots:\n{r}");
    }
}
