//! `livepatch`: make, sign and check Warden live patches. See docs/LIVEPATCH.md.

use livepatch::build::{self, Options};
use livepatch::image::ImageFile;
use livepatch::{Error, Result};
use livepatch_format::Hex;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: livepatch <command> [options]

commands:
  keygen [--comment TEXT] PREFIX
        make an ed25519 key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub
  sign --key KEY.key -o OUT PAYLOAD
        sign an unsigned payload (ELF) with a secret key
  verify --keys KEYS.pub [--image IMAGE] PAYLOAD
        check the signature against a public key ring and the payload's structure;
        with --image, run every check the hypervisor makes at upload against that image
  inspect [--keys KEYS.pub] PAYLOAD
        show key id, build-ids, dependencies, functions, hooks, metadata
  build --source DIR --image IMAGE --patch FIX.diff --key KEY.key [options]
        build a signed payload from a unified diff (patch -p1) against the source
        the image was built from
      -o OUT                payload file (default: NAME.livepatch)
      --name NAME           payload name in its metadata (default: the diff's file stem)
      --description TEXT    metadata description
      --features LIST       cargo features of the image (e.g. test-hooks for warden-test)
      --depends LOWER       stack on this payload (its build-id becomes the dependency)
      --on-top-of DIFF      the lower payload's diff (repeatable, bottom first)
      --work DIR            work directory, shared by the payloads built in it
                            (default: SOURCE/target/livepatch-build)
";

/// The options each command takes (every one takes a value).
fn options_of(cmd: &str) -> &'static [&'static str] {
    match cmd {
        "keygen" => &["--comment"],
        "sign" => &["--key", "-o"],
        "verify" => &["--keys", "--image"],
        "inspect" => &["--keys"],
        "build" => &[
            "--source",
            "--image",
            "--patch",
            "--key",
            "-o",
            "--name",
            "--description",
            "--features",
            "--depends",
            "--on-top-of",
            "--work",
        ],
        _ => &[],
    }
}

/// A command's arguments, parsed with lexopt: options with their values
/// (in order; some repeat) and the positional arguments.
struct Args {
    opts: Vec<(String, String)>,
    rest: Vec<String>,
}

impl Args {
    /// Parse `args` for `cmd`; `Ok(None)` for --help.
    fn parse(cmd: &str, args: Vec<String>) -> Result<Option<Args>> {
        use lexopt::prelude::*;
        let known = options_of(cmd);
        let text = |v: std::ffi::OsString| {
            v.into_string()
                .map_err(|v| Error(format!("not UTF-8: {}", v.to_string_lossy())))
        };
        let mut p = lexopt::Parser::from_args(args);
        let mut a = Args {
            opts: Vec::new(),
            rest: Vec::new(),
        };
        let err = |e: lexopt::Error| Error(e.to_string());
        while let Some(arg) = p.next().map_err(err)? {
            let name = match arg {
                Long("help") | Short('h') => return Ok(None),
                Long(l) => format!("--{l}"),
                Short(c) => format!("-{c}"),
                Value(v) => {
                    a.rest.push(text(v)?);
                    continue;
                }
            };
            if !known.contains(&name.as_str()) {
                return Err(Error(format!("unknown option {name}")));
            }
            let v = p
                .value()
                .map_err(|_| Error(format!("{name} needs a value")))?;
            a.opts.push((name, text(v)?));
        }
        Ok(Some(a))
    }
    /// The last value of option `name`.
    fn opt(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self
            .opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone()))
    }
    /// Every value of a repeatable option, in order.
    fn opts(&mut self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .opts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect())
    }
    fn need(&mut self, name: &str) -> Result<String> {
        self.opt(name)?
            .ok_or_else(|| Error(format!("{name} is required")))
    }
    fn one(&mut self, what: &str) -> Result<String> {
        match self.rest.len() {
            1 => Ok(self.rest.remove(0)),
            0 => Err(Error(format!("missing {what}"))),
            _ => Err(Error(format!(
                "unexpected arguments: {}",
                self.rest[1..].join(" ")
            ))),
        }
    }
}

fn run(cmd: &str, mut a: Args) -> Result<()> {
    match cmd {
        "keygen" => {
            let comment = a.opt("--comment")?.unwrap_or_default();
            let prefix = PathBuf::from(a.one("PREFIX")?);
            let (s, p, id) = livepatch::keygen(&prefix, &comment)?;
            println!(
                "key id {id}\nsecret key: {} (keep it private)\npublic key: {} (give it to the hypervisor build)",
                s.display(),
                p.display()
            );
        }
        "sign" => {
            let key = livepatch::secret_key(&PathBuf::from(a.need("--key")?))?;
            let out = PathBuf::from(a.need("-o")?);
            let input = PathBuf::from(a.one("PAYLOAD")?);
            let signed = livepatch::sign(&livepatch::read(&input)?, &key)?;
            std::fs::write(&out, &signed).map_err(|e| Error::io(&out, e))?;
            println!(
                "{}: signed with key {} ({} bytes)",
                out.display(),
                livepatch_format::sig::KeyId::of(&livepatch_format::sig::public_of(&key)),
                signed.len()
            );
        }
        "verify" => {
            let keys = livepatch::public_keys(&PathBuf::from(a.need("--keys")?))?;
            let image = a
                .opt("--image")?
                .map(|p| ImageFile::read(&PathBuf::from(p)))
                .transpose()?;
            let file = PathBuf::from(a.one("PAYLOAD")?);
            let report = livepatch::verify(&livepatch::read(&file)?, &keys, image.as_ref())?;
            print!("{report}");
            println!("{}: OK", file.display());
        }
        "inspect" => {
            let keys = a
                .opt("--keys")?
                .map(|p| livepatch::public_keys(&PathBuf::from(p)))
                .transpose()?;
            let file = PathBuf::from(a.one("PAYLOAD")?);
            print!(
                "{}",
                livepatch::inspect(&livepatch::read(&file)?, keys.as_deref())?
            );
        }
        "build" => {
            let source = PathBuf::from(a.need("--source")?);
            let image = PathBuf::from(a.need("--image")?);
            let patch = PathBuf::from(a.need("--patch")?);
            let key = PathBuf::from(a.need("--key")?);
            let stem = patch
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "patch".into());
            let name = a.opt("--name")?.unwrap_or(stem);
            if !livepatch_format::valid_name(name.as_bytes()) {
                return Err(Error(format!("invalid payload name {name:?}")));
            }
            let output = a
                .opt("-o")?
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(format!("{name}.livepatch")));
            let description = a.opt("--description")?;
            let features = a
                .opts("--features")?
                .iter()
                .flat_map(|f| f.split(',').map(String::from).collect::<Vec<_>>())
                .filter(|f| !f.is_empty())
                .collect();
            let depends = a.opt("--depends")?.map(PathBuf::from);
            let on_top_of = a
                .opts("--on-top-of")?
                .into_iter()
                .map(PathBuf::from)
                .collect();
            let work = a
                .opt("--work")?
                .map(PathBuf::from)
                .unwrap_or_else(|| build::default_work_dir(&source));
            if let Some(x) = a.rest.first() {
                return Err(Error(format!("unexpected argument {x}")));
            }
            let r = build::build(&Options {
                source,
                image,
                patch,
                on_top_of,
                depends,
                key,
                output,
                name,
                description,
                features,
                work,
            })?;
            println!(
                "{}: {} bytes, build-id {}, {} function(s) patched, {} unit(s) in the payload",
                r.output.display(),
                r.size,
                Hex(&r.build_id),
                r.functions.len(),
                r.units
            );
            for (n, addr, size) in &r.functions {
                println!("  {n} @{addr:#x} ({size} bytes)");
            }
        }
        other => return Err(Error(format!("unknown command {other:?}\n{USAGE}"))),
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let cmd = args.remove(0);
    let parsed = match cmd.as_str() {
        "help" | "--help" | "-h" => Ok(None),
        // An unknown command is named as such, whatever follows it.
        c if options_of(c).is_empty() => Ok(Some(Args {
            opts: Vec::new(),
            rest: Vec::new(),
        })),
        _ => Args::parse(&cmd, args),
    };
    let r = match parsed {
        Ok(Some(a)) => run(&cmd, a),
        Ok(None) => {
            print!("{USAGE}");
            Ok(())
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livepatch: error: {e}");
            ExitCode::FAILURE
        }
    }
}
