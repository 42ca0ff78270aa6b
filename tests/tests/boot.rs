//! QEMU integration tests for issue 2 ("Warden boots"). Each boots the test
//! image and passes only on the agreed debug-exit code.

use std::path::PathBuf;
use warden_tests::{Boot, production_image};

/// A module file with known content, unique to this test process.
fn module_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = xtask::bare_metal_target_dir().join("test-modules");
    std::fs::create_dir_all(&dir).expect("create module dir");
    let p = dir.join(format!("{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write module");
    p
}

fn smp(n: u32) {
    let o = Boot::new().smp(n).run();
    o.expect_ready().contains(&format!(
        "Warden ready: {n}/{n} CPUs online, SVM enabled on {n};"
    ));
    for cpu in 0..n {
        assert_eq!(
            o.lines_with(&format!("CPU{cpu}: APIC {cpu} online, SVM enabled"))
                .len(),
            1,
            "CPU{cpu} not reported online with SVM:\n{}",
            o.serial
        );
    }
    let per_cpu = o
        .serial
        .lines()
        .filter(|l| l.contains(": APIC ") && l.contains("online, SVM enabled"))
        .count();
    assert_eq!(per_cpu, n as usize, "{}", o.serial);
}

#[test]
fn smp_1_cpu_online_with_svm() {
    smp(1);
}

#[test]
fn smp_2_cpus_online_with_svm() {
    smp(2);
}

#[test]
fn smp_4_cpus_online_with_svm() {
    smp(4);
}

#[test]
fn kernel_boot_reports_protocol_build_id_memory_and_console_ring() {
    let o = Boot::new().cmdline("conring_size=128k").run();
    o.expect_ready()
        .contains("booting via Multiboot 1 from qemu")
        .contains("Symbol table: ")
        .contains("Paging: identity map")
        .contains("W^X: text")
        .contains("ring 128k")
        .contains("Console ring: 131072 bytes")
        .contains("test: console ring OK")
        .lacks("WARN  Symbol table")
        .lacks("ERROR");
    // The build-id printed at boot is the image's GNU build-id.
    let id = xtask::build::build_id(&warden_tests::test_image()).expect("build-id");
    o.contains(&format!("(build-id {id})"));
    // Free memory is reported and plausible for 512 MiB.
    let ready = o.lines_with("Warden ready:")[0];
    let free: u64 = ready
        .split(" MiB free")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no free memory in {ready}"));
    assert!((300..512).contains(&free), "{ready}");
}

#[test]
fn kernel_boot_lists_modules_and_refuses_a_dom0_kernel_that_is_not_elf() {
    let a = module_file("modA", &[0xAA; 5000]);
    let b = module_file("modB", b"second module");
    let o = Boot::new()
        .module(&a, "")
        .module(&b, "x=1 name=\"two words\"")
        .run();
    o.expect_refused().contains("Boot modules: 3");
    let m1 = o.lines_with("module 1:");
    let m2 = o.lines_with("module 2:");
    assert!(
        m1[0].contains("(5000 bytes)") && m1[0].contains("cmdline ''"),
        "{}",
        o.serial
    );
    assert!(
        m2[0].contains("(13 bytes)") && m2[0].contains("cmdline 'x=1 name=\"two words\"'"),
        "{}",
        o.serial
    );
    o.contains("module 0: FLASK policy")
        .contains("module 1: dom0 kernel")
        .contains("module 2: handed to dom0")
        .contains("*** Warden cannot boot: invalid input: Could not set up DOM0 guest OS from module 1: invalid input: not an ELF image (bad magic)");
}

#[test]
fn grub_multiboot2_boot_runs_dom0_with_its_module() {
    let b = module_file("grubB", &[7u8; 12345]);
    let o = Boot::new()
        .grub()
        .cmdline("loglvl=all")
        .guest("role=hello")
        .module(&b, "x=1")
        .run();
    o.expect_dom0_poweroff()
        .contains("booting via Multiboot 2 from GRUB")
        .contains("Command line: test_exit loglvl=all")
        .contains("RSDP from the boot loader")
        .contains("Boot modules: 3")
        .contains("module 2: handed to dom0")
        .contains("Warden ready: 2/2 CPUs online")
        .contains("tguest: hello from d0")
        .contains("tguest: module 0: 12345 bytes, command line 'x=1'");
    let m2 = o.lines_with("module 2:");
    assert!(
        m2[0].contains("(12345 bytes)") && m2[0].contains("cmdline 'x=1'"),
        "{}",
        o.serial
    );
}

#[test]
fn memory_above_4g_is_mapped_and_counted() {
    let o = Boot::new().memory(4608).cmdline("conring_size=8M").run();
    o.expect_ready()
        .contains("Console ring: 8388608 bytes")
        .contains("[0x000100000000-");
    let ready = o.lines_with("Warden ready:")[0];
    assert!(
        ready.contains("of 4607 MiB") || ready.contains("of 4606 MiB"),
        "{ready}"
    );
}

#[test]
fn large_console_ring_is_allocated() {
    Boot::new()
        .cmdline("conring_size=16M")
        .run()
        .expect_ready()
        .contains("ring 16M")
        .contains("Console ring: 16777216 bytes")
        .contains("test: console ring OK")
        .lacks("keeping the boot ring");
}

#[test]
fn console_ring_too_big_for_memory_keeps_the_boot_ring() {
    Boot::new()
        .memory(96)
        .cmdline("conring_size=64M")
        .run()
        .expect_ready()
        .contains("cannot allocate a 67108864-byte console ring; keeping the boot ring")
        .contains("Console ring: 65536 bytes");
}

#[test]
fn bad_options_are_warned_about_and_defaults_kept() {
    let o = Boot::new()
        .cmdline("frobnicate=7 conring_size=lots loglvl=chatty com1=9600,9x1 maxcpus=0")
        .run();
    o.expect_ready()
        .contains("WARN  cmdline: unknown option 'frobnicate=7' ignored")
        .contains("WARN  cmdline: malformed value 'conring_size=lots': expected a size such as 128k or 1M; keeping conring_size=64k")
        .contains("malformed value 'loglvl=chatty'")
        .contains("malformed value 'com1=9600,9x1'")
        .contains("malformed value 'maxcpus=0'")
        .contains("ring 64k, loglvl=info; flask=enforcing")
        .contains("com1 115200,8n1,0x3f8")
        .contains("Warden ready: 2/2 CPUs online");
}

#[test]
fn malformed_command_lines_never_panic() {
    let long = "y".repeat(3000);
    for line in [
        "\"unterminated quote conring_size=\"1M".to_string(),
        "= == === ==x x== no- no-=1 -- --- \"\" \"".to_string(),
        format!("{long}={long} conring_size={long} com1={long}"),
        "conring_size=99999999999999999999999T dom0_mem=max:1k,min:2G com2=115200,8n1,0xffff,irq,x".into(),
        "console=com1,,,,com2 loglvl=all/ loglvl=/ flask= test_fault=nonsense \u{1F600}=\u{7}\u{1b}[2J".into(),
    ] {
        let o = Boot::new().cmdline(&line).run();
        if line.contains("flask= ") {
            // An empty flask= is no FLASK mode: refused, as Xen does, with the reason.
            o.expect_refused()
                .contains("*** Warden cannot boot: invalid input: flask=: not a FLASK mode");
        } else {
            o.expect_ready();
        }
        o.lacks("Warden panic").lacks("Warden fatal");
    }
}

#[test]
fn injected_fault_is_reported_with_symbolised_backtrace() {
    let o = Boot::new().cmdline("test_fault=ud").run();
    o.expect_fatal()
        .contains("INFO  Warden ready:")
        .contains("*** Warden fatal error on CPU0: #UD invalid opcode (vector 6), error code 0x0")
        .contains("RAX: ")
        .contains("CR3: ");
    let rip = o.lines_with("RIP: ");
    assert!(
        rip[0].contains("warden::test_hooks::fault_level_two+0x"),
        "{}",
        o.serial
    );
    let bt: Vec<&str> = o
        .serial
        .lines()
        .skip_while(|l| !l.contains("Backtrace:"))
        .collect();
    let names: Vec<&str> = ["fault_level_one", "inject_fault", "after_ready", "kmain"]
        .into_iter()
        .filter(|f| !bt.iter().any(|l| l.contains(&format!("{f}+0x"))))
        .collect();
    assert!(names.is_empty(), "backtrace lacks {names:?}:\n{}", o.serial);
    // Frames are in call order: the innermost caller first.
    let pos = |f: &str| bt.iter().position(|l| l.contains(f)).unwrap_or(usize::MAX);
    assert!(pos("fault_level_one") < pos("inject_fault") && pos("inject_fault") < pos("kmain"));
}

#[test]
fn panic_reports_location_and_backtrace() {
    let o = Boot::new().cmdline("test_fault=panic").run();
    o.expect_fatal()
        .contains("*** Warden panic on CPU0 at hypervisor/src/test_hooks.rs:")
        .contains("injected panic (test_fault=panic)")
        .contains("Backtrace:")
        .contains("warden::test_hooks::fault_level_two+0x")
        .contains("warden::test_hooks::fault_level_one+0x");
}

#[test]
fn write_to_hypervisor_text_faults() {
    let o = Boot::new().cmdline("test_fault=write_text").run();
    o.expect_fatal()
        .contains("#PF page fault (vector 14), error code 0x3")
        .contains("write to a read-only page")
        .contains("is in the hypervisor's .text (read-only, executable) (W^X)")
        .contains("warden::test_hooks::fault_level_one+0x")
        .lacks("did not fault");
}

#[test]
fn write_to_rodata_faults() {
    Boot::new()
        .cmdline("test_fault=write_rodata")
        .run()
        .expect_fatal()
        .contains("write to a read-only page")
        .contains("is in the hypervisor's .rodata")
        .lacks("did not fault");
}

#[test]
fn executing_data_faults() {
    Boot::new()
        .cmdline("test_fault=exec_data")
        .run()
        .expect_fatal()
        .contains("#PF page fault (vector 14), error code 0x11")
        .contains("instruction fetch from a no-execute page")
        .contains("is in the hypervisor's .data/.bss")
        .lacks("did not fault");
}

#[test]
fn cpu_without_svm_stops_the_boot() {
    Boot::new()
        .cpu("qemu64,-svm")
        .run()
        .expect_refused()
        .contains("*** Warden cannot boot: unsupported hardware: this CPU has no AMD SVM")
        .lacks("Warden ready");
}

#[test]
fn cpu_without_npt_stops_the_boot() {
    Boot::new()
        .cpu("qemu64,+svm")
        .run()
        .expect_refused()
        .contains(
            "*** Warden cannot boot: unsupported hardware: this CPU has SVM but no nested paging",
        )
        .lacks("Warden ready");
}

#[test]
fn maxcpus_limits_bring_up() {
    Boot::new()
        .smp(4)
        .cmdline("maxcpus=2")
        .run()
        .expect_ready()
        .contains("maxcpus=2: starting 1 of 3 application processors")
        .contains("Warden ready: 2/4 CPUs online, SVM enabled on 2;");
}

#[test]
fn loglvl_and_timestamps_shape_the_serial_console() {
    let o = Boot::new()
        .cmdline("loglvl=warning no-console_timestamps frobnicate")
        .run();
    o.expect(hvcore::testexit::TestExit::Ready)
        .contains("WARN  cmdline: unknown option 'frobnicate' ignored")
        .lacks("INFO  Warden ready")
        .lacks("[    0.");
    let o = Boot::new().cmdline("console=none").run();
    o.expect(hvcore::testexit::TestExit::Ready)
        .lacks("Warden ready");
}

#[test]
fn production_image_has_no_test_hooks() {
    let prod = std::fs::read(production_image()).expect("read production image");
    let test = std::fs::read(warden_tests::test_image()).expect("read test image");
    let has = |img: &[u8], s: &str| img.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(
        has(&test, "test_fault: injecting"),
        "test image should carry the hooks"
    );
    assert!(
        !has(&prod, "test_fault: injecting"),
        "production image carries test hooks"
    );
    assert!(has(&prod, "test_* options ignored"));
}
