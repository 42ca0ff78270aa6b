//! A GRUB rescue ISO that boots the image with `multiboot2` and its modules
//! with `module2` (how Xen-style hypervisors are installed on real machines).

use crate::qemu::Module;
use crate::{Error, Result, bail};
use std::path::Path;
use std::process::Command;

/// Quote a string as one GRUB word.
fn grub_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The grub.cfg text for `image_name` (in /boot) and modules (in /boot/modules).
pub fn config(cmdline: &str, module_names: &[(String, String)]) -> String {
    let mut c = String::from(
        "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\nset timeout=0\n\
         menuentry \"Warden\" {\n",
    );
    // GRUB joins its arguments with spaces (double-quoting any that contain
    // one), so each word of the command line becomes one quoted GRUB word.
    let words = |line: &str| -> String {
        hvcore::cmdline::tokenize_raw(line)
            .iter()
            .map(|w| format!(" {}", grub_quote(w)))
            .collect()
    };
    c.push_str(&format!("    multiboot2 /boot/warden{}\n", words(cmdline)));
    for (name, args) in module_names {
        c.push_str(&format!(
            "    module2 /boot/modules/{name}{}\n",
            words(args)
        ));
    }
    c.push_str("    boot\n}\n");
    c
}

/// Build `out` (an ISO) booting `image` with `cmdline` and `modules`.
pub fn make_iso(image: &Path, cmdline: &str, modules: &[Module], out: &Path) -> Result<()> {
    let work = out.with_extension("d");
    let _ = std::fs::remove_dir_all(&work);
    let boot = work.join("boot");
    std::fs::create_dir_all(boot.join("grub"))?;
    std::fs::create_dir_all(boot.join("modules"))?;
    std::fs::copy(image, boot.join("warden"))
        .map_err(|e| Error(format!("copying {}: {e}", image.display())))?;
    let mut names = Vec::new();
    for (i, m) in modules.iter().enumerate() {
        let base = m
            .path
            .file_name()
            .map(|n| {
                n.to_string_lossy().replace(
                    |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
                    "_",
                )
            })
            .unwrap_or_else(|| "module".into());
        let name = format!("{i}-{base}");
        std::fs::copy(&m.path, boot.join("modules").join(&name))
            .map_err(|e| Error(format!("copying module {}: {e}", m.path.display())))?;
        names.push((name, m.args.clone()));
    }
    std::fs::write(boot.join("grub").join("grub.cfg"), config(cmdline, &names))?;
    let o = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(&work)
        .output()
        .map_err(|e| {
            Error(format!(
                "cannot run grub-mkrescue ({e}); install grub-pc-bin grub-common xorriso mtools"
            ))
        })?;
    let _ = std::fs::remove_dir_all(&work);
    if !o.status.success() {
        bail!(
            "grub-mkrescue failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_quotes_arguments_as_single_words() {
        let c = config(
            "console=com1 x=\"a b\" it's",
            &[("0-A".into(), String::new()), ("1-B".into(), "x=1".into())],
        );
        assert!(
            c.contains("multiboot2 /boot/warden 'console=com1' 'x=\"a b\"' 'it'\\''s'\n"),
            "{c}"
        );
        assert!(c.contains("module2 /boot/modules/0-A\n"));
        assert!(c.contains("module2 /boot/modules/1-B 'x=1'\n"));
        assert!(c.contains("set timeout=0"));
    }
}
