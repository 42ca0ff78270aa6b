//! The bytes written into old functions.

/// `ENDBR64`.
pub const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
/// Length of `jmp rel32`.
pub const JMP_LEN: usize = 5;
/// Most bytes one patch site holds (a NOP patch writes up to 31).
pub const MAX_PATCH: usize = 31;

/// Bytes to skip at the start of a function before patching: 4 if it starts
/// with `ENDBR64` (indirect-branch landing pad, which must stay), else 0.
pub fn endbr_skip(start: &[u8]) -> usize {
    if start.len() >= 4 && start[..4] == ENDBR64 {
        4
    } else {
        0
    }
}

/// `jmp rel32` at `at` to `to`, or `None` if the target is beyond +-2 GiB.
pub fn jmp(at: u64, to: u64) -> Option<[u8; JMP_LEN]> {
    let next = at.checked_add(JMP_LEN as u64)?;
    let disp = (to as i128) - (next as i128);
    let disp = i32::try_from(disp).ok()?;
    let d = disp.to_le_bytes();
    Some([0xe9, d[0], d[1], d[2], d[3]])
}

/// `len` bytes of NOPs (the recommended multi-byte forms, longest first).
pub fn nops(len: usize) -> [u8; MAX_PATCH] {
    const FORMS: [&[u8]; 9] = [
        &[0x90],
        &[0x66, 0x90],
        &[0x0f, 0x1f, 0x00],
        &[0x0f, 0x1f, 0x40, 0x00],
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
        &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    ];
    let mut out = [0u8; MAX_PATCH];
    let mut at = 0;
    let len = len.min(MAX_PATCH);
    while at < len {
        let n = (len - at).min(FORMS.len());
        out[at..at + n].copy_from_slice(FORMS[n - 1]);
        at += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_encoding() {
        assert_eq!(jmp(0x1000, 0x1005).unwrap(), [0xe9, 0, 0, 0, 0]);
        assert_eq!(jmp(0x1000, 0x1000).unwrap(), [0xe9, 0xfb, 0xff, 0xff, 0xff]);
        assert_eq!(
            jmp(0x10_0000, 0x2000_0000).unwrap()[1..],
            (0x2000_0000i32 - 0x10_0005).to_le_bytes()
        );
        assert!(jmp(0x1000, 0x1_0000_1005).is_none());
        assert!(jmp(0x8000_0000, 5).is_some());
        assert!(jmp(0x8000_0005 + 1, 0).is_none());
        assert!(jmp(u64::MAX - 2, 0).is_none());
    }

    #[test]
    fn endbr_and_nops() {
        assert_eq!(endbr_skip(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55]), 4);
        assert_eq!(endbr_skip(&[0x55, 0x48]), 0);
        assert_eq!(endbr_skip(&[0xf3, 0x0f]), 0);
        assert_eq!(&nops(1)[..1], &[0x90]);
        assert_eq!(
            &nops(11)[..11],
            &[0x66, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0, 0x66, 0x90]
        );
        assert!(nops(5)[5..].iter().all(|&b| b == 0));
    }
}
