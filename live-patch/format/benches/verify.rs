//! Signature verification time: Warden's `sig::verify` (SHA-256 with the
//! `sha2` crate + ed25519-dalek `verify_strict`) against the same scheme on
//! ring 0.17 (BoringSSL's SHA-256 and Ed25519), on the same signed payloads,
//! in one run. `cargo bench -p livepatch-format --bench verify`.

use livepatch_format::sig::{self, DOMAIN, TRAILER_LEN, TrustedKey};
use ring::signature::{ED25519, UnparsedPublicKey};
use std::hint::black_box;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The same check with ring: digest over the same spans, Ed25519 over it.
fn ring_verify(file: &[u8], public: &[u8; 32]) -> bool {
    let (elf, t) = file.split_at(file.len() - TRAILER_LEN);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(DOMAIN);
    ctx.update(elf);
    ctx.update(&t[..32]);
    ctx.update(&t[96..]);
    let d = ctx.finish();
    UnparsedPublicKey::new(&ED25519, public)
        .verify(d.as_ref(), &t[32..96])
        .is_ok()
}

fn main() {
    let seed = [0x5au8; 32];
    let public = sig::public_of(&seed);
    let keys = [TrustedKey::new(public)];
    println!(
        "| payload size | Warden (sha2 + ed25519-dalek) | ring 0.17 (same scheme) | ratio (ring / Warden) |"
    );
    println!("|---|---|---|---|");
    for size in [
        4 << 10,
        64 << 10,
        256 << 10,
        1 << 20,
        (2 << 20) - TRAILER_LEN,
    ] {
        let elf: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let mut file = elf.clone();
        file.extend_from_slice(&sig::sign(&elf, &seed));
        assert!(sig::verify(&file, &keys).is_ok());
        assert!(
            ring_verify(&file, &public),
            "ring must accept Warden's signature"
        );
        let mut bad = file.clone();
        bad[size / 2] ^= 1;
        assert!(sig::verify(&bad, &keys).is_err() && !ring_verify(&bad, &public));
        let iters = (64 << 20) / size.max(1 << 16) + 20;
        let (mut w, mut r) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(sig::verify(black_box(&file), &keys).is_ok());
            }
            w.push(t.elapsed().as_secs_f64() / iters as f64);
            let t = Instant::now();
            for _ in 0..iters {
                black_box(ring_verify(black_box(&file), &public));
            }
            r.push(t.elapsed().as_secs_f64() / iters as f64);
        }
        let (w, r) = (median(w), median(r));
        let fmt = |s: f64| {
            if s < 1e-3 {
                format!("{:.1} µs", s * 1e6)
            } else {
                format!("{:.3} ms", s * 1e3)
            }
        };
        println!(
            "| {} KiB | {} | {} | {:.2}x |",
            (size + TRAILER_LEN) >> 10,
            fmt(w),
            fmt(r),
            r / w
        );
    }
}
