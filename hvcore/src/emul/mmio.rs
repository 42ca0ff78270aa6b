//! The instruction side of MMIO emulation: decode the guest instruction that
//! touched an address with no RAM behind it (the `iced-x86` decoder, built
//! `no_std` with only its decoder) and reduce it to one access of 1, 2, 4
//! or 8 bytes, its direction, the register or immediate involved and the
//! instruction's length (QEMU's SVM has neither decode assists nor next-RIP,
//! so the length comes from the decoder). Only the forms that touch MMIO in
//! practice are emulated: MOV between a register and memory (including the
//! `moffs` forms), MOV of an immediate to memory, and MOVZX/MOVSX/MOVSXD
//! loads; anything else is [`Unsupported`]. 16-, 32- and 64-bit code
//! decode alike (real-mode code is 16-bit).
//!
//! The guest's address of the access is not recomputed here: the nested
//! page fault gives the guest-physical address.

use iced_x86::{Decoder, DecoderOptions, MemorySize, Mnemonic, OpKind, Register};

/// A general-purpose register operand: index in x86 encoding order (RAX=0
/// .. R15=15), width in bytes, and whether it is AH/CH/DH/BH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gpr {
    pub index: u8,
    pub size: u8,
    pub high8: bool,
}

impl Gpr {
    /// The GPR behind an iced register, if it is one.
    fn from_iced(r: Register) -> Option<Gpr> {
        let n = r as u32;
        let rax = Register::RAX as u32;
        let eax = Register::EAX as u32;
        let ax = Register::AX as u32;
        let al = Register::AL as u32;
        let g = |index: u32, size: u8, high8: bool| Gpr {
            index: index as u8,
            size,
            high8,
        };
        Some(match n {
            _ if (rax..rax + 16).contains(&n) => g(n - rax, 8, false),
            _ if (eax..eax + 16).contains(&n) => g(n - eax, 4, false),
            _ if (ax..ax + 16).contains(&n) => g(n - ax, 2, false),
            _ if (al..al + 4).contains(&n) => g(n - al, 1, false),
            _ if (al + 4..al + 8).contains(&n) => g(n - al - 4, 1, true),
            _ if (al + 8..al + 20).contains(&n) => g(n - al - 4, 1, false),
            _ => return None,
        })
    }

    /// Read this operand from a register file.
    pub fn read(&self, regs: &[u64; 16]) -> u64 {
        let r = regs[(self.index & 15) as usize];
        match (self.size, self.high8) {
            (1, true) => (r >> 8) & 0xFF,
            (1, false) => r & 0xFF,
            (2, _) => r & 0xFFFF,
            (4, _) => r & 0xFFFF_FFFF,
            _ => r,
        }
    }

    /// Write `v` to this operand: 32-bit writes zero the upper half, 8- and
    /// 16-bit writes keep the other bits.
    pub fn write(&self, regs: &mut [u64; 16], v: u64) {
        let r = &mut regs[(self.index & 15) as usize];
        *r = match (self.size, self.high8) {
            (1, true) => (*r & !0xFF00) | ((v & 0xFF) << 8),
            (1, false) => (*r & !0xFF) | (v & 0xFF),
            (2, _) => (*r & !0xFFFF) | (v & 0xFFFF),
            (4, _) => v & 0xFFFF_FFFF,
            _ => v,
        };
    }
}

/// How a load widens the value it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extend {
    None,
    Zero,
    Sign,
}

/// An arithmetic or logic operation with a memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluOp {
    Add,
    Sub,
    /// SUB without writing the result.
    Cmp,
    And,
    /// AND without writing the result.
    Test,
    Or,
    Xor,
}

impl AluOp {
    fn writes(self) -> bool {
        !matches!(self, AluOp::Cmp | AluOp::Test)
    }
}

/// A register or an immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Reg(Gpr),
    Imm(u64),
}

/// What the instruction does with the MMIO location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read `size` bytes into `dst` (widened as `extend` says).
    Load { dst: Gpr, extend: Extend },
    /// Write `size` bytes of a register.
    StoreReg { src: Gpr },
    /// Write `size` bytes of an immediate.
    StoreImm { value: u64 },
    /// `mem op other` (result to memory) when `to_mem`, else
    /// `reg op mem` (result to the register `other`); flags as the CPU sets
    /// them; CMP and TEST write nothing but the flags.
    Alu {
        op: AluOp,
        other: Operand,
        to_mem: bool,
    },
}

/// RFLAGS bits the ALU forms set: CF, PF, AF, ZF, SF, OF.
pub const ALU_FLAGS: u64 = 0x8D5;

/// A decoded MMIO instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioInsn {
    /// Instruction length in bytes.
    pub len: u8,
    /// Width of the memory access in bytes (1, 2, 4 or 8).
    pub size: u8,
    pub access: Access,
}

impl MmioInsn {
    /// Whether the instruction writes memory.
    pub fn is_write(&self) -> bool {
        match self.access {
            Access::Load { .. } => false,
            Access::StoreReg { .. } | Access::StoreImm { .. } => true,
            Access::Alu { op, to_mem, .. } => to_mem && op.writes(),
        }
    }

    /// Whether the instruction reads memory.
    pub fn is_read(&self) -> bool {
        matches!(self.access, Access::Load { .. } | Access::Alu { .. })
    }

    /// Execute the instruction with `read` giving the memory's value:
    /// updates the registers and flags, returns the value to write to
    /// memory, if any (truncated to the access size).
    pub fn execute(
        &self,
        gpr: &mut [u64; 16],
        rflags: &mut u64,
        read: &mut dyn FnMut() -> u64,
    ) -> Option<u64> {
        let mask = size_mask(self.size);
        match self.access {
            Access::Load { .. } => {
                let v = read();
                self.complete_load(gpr, v);
                None
            }
            Access::StoreReg { .. } | Access::StoreImm { .. } => Some(self.store_value(gpr)),
            Access::Alu { op, other, to_mem } => {
                let m = read() & mask;
                let o = match other {
                    Operand::Reg(r) => r.read(gpr),
                    Operand::Imm(v) => v,
                } & mask;
                let (a, b) = if to_mem { (m, o) } else { (o, m) };
                let (r, flags) = alu(op, a, b, self.size);
                *rflags = (*rflags & !ALU_FLAGS) | flags;
                if !op.writes() {
                    return None;
                }
                match (to_mem, other) {
                    (true, _) => Some(r),
                    (false, Operand::Reg(reg)) => {
                        reg.write(gpr, r);
                        None
                    }
                    (false, Operand::Imm(_)) => None,
                }
            }
        }
    }

    /// The value a store writes (truncated to the access size).
    pub fn store_value(&self, regs: &[u64; 16]) -> u64 {
        let v = match self.access {
            Access::StoreReg { src } => src.read(regs),
            Access::StoreImm { value } => value,
            Access::Load { .. } | Access::Alu { .. } => 0,
        };
        v & size_mask(self.size)
    }

    /// Complete a load with the `value` read (only the access's bytes count).
    pub fn complete_load(&self, regs: &mut [u64; 16], value: u64) {
        if let Access::Load { dst, extend } = self.access {
            let v = value & size_mask(self.size);
            let v = match extend {
                Extend::Sign => {
                    let shift = 64 - 8 * self.size as u32;
                    (((v << shift) as i64) >> shift) as u64
                }
                _ => v,
            };
            dst.write(regs, v);
        }
    }
}

/// `a op b` on `size` bytes: the result and the flags it sets.
fn alu(op: AluOp, a: u64, b: u64, size: u8) -> (u64, u64) {
    let mask = size_mask(size);
    let top = 8 * size as u32 - 1;
    let (r, cf, of, af) = match op {
        AluOp::Add => {
            let r = a.wrapping_add(b) & mask;
            let cf = (a as u128 + b as u128) > mask as u128;
            let of = ((a ^ r) & (b ^ r)) >> top & 1 != 0;
            (r, cf, of, (a ^ b ^ r) & 0x10 != 0)
        }
        AluOp::Sub | AluOp::Cmp => {
            let r = a.wrapping_sub(b) & mask;
            let of = ((a ^ b) & (a ^ r)) >> top & 1 != 0;
            (r, a < b, of, (a ^ b ^ r) & 0x10 != 0)
        }
        AluOp::And | AluOp::Test => (a & b, false, false, false),
        AluOp::Or => (a | b, false, false, false),
        AluOp::Xor => (a ^ b, false, false, false),
    };
    let mut f = 0u64;
    f |= cf as u64;
    f |= ((r as u8).count_ones().is_multiple_of(2) as u64) << 2;
    f |= (af as u64) << 4;
    f |= ((r == 0) as u64) << 6;
    f |= ((r >> top) & 1) << 7;
    f |= (of as u64) << 11;
    (r, f)
}

fn size_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// Why an instruction cannot be emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// Not a valid instruction (or cut short: bytes missing).
    Invalid,
    /// A valid instruction of a form that is not emulated.
    Form(Mnemonic),
}

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Unsupported::Invalid => write!(f, "invalid or incomplete instruction"),
            Unsupported::Form(m) => write!(f, "instruction form not emulated ({m:?})"),
        }
    }
}

/// Decode the instruction at the start of `bytes` (up to 15 bytes fetched
/// at the guest's RIP) for code of `bitness` 16, 32 or 64.
pub fn decode(bytes: &[u8], bitness: u32) -> Result<MmioInsn, Unsupported> {
    let mut d = Decoder::new(bitness, bytes, DecoderOptions::NONE);
    let i = d.decode();
    if i.is_invalid() {
        return Err(Unsupported::Invalid);
    }
    let form = || Unsupported::Form(i.mnemonic());
    if i.has_rep_prefix() || i.has_repne_prefix() || i.has_lock_prefix() || i.op_count() != 2 {
        return Err(form());
    }
    let size = match i.memory_size() {
        MemorySize::UInt8 | MemorySize::Int8 => 1,
        MemorySize::UInt16 | MemorySize::Int16 => 2,
        MemorySize::UInt32 | MemorySize::Int32 => 4,
        MemorySize::UInt64 | MemorySize::Int64 => 8,
        _ => return Err(form()),
    };
    let reg = |n: u32| Gpr::from_iced(i.op_register(n)).ok_or_else(form);
    let access = match (i.mnemonic(), i.op_kind(0), i.op_kind(1)) {
        (Mnemonic::Mov, OpKind::Memory, OpKind::Register) => Access::StoreReg { src: reg(1)? },
        (Mnemonic::Mov, OpKind::Register, OpKind::Memory) => Access::Load {
            dst: reg(0)?,
            extend: Extend::None,
        },
        (Mnemonic::Mov, OpKind::Memory, k) if is_immediate(k) => Access::StoreImm {
            value: i.try_immediate(1).map_err(|_| form())?,
        },
        (Mnemonic::Movzx, OpKind::Register, OpKind::Memory) => Access::Load {
            dst: reg(0)?,
            extend: Extend::Zero,
        },
        (Mnemonic::Movsx | Mnemonic::Movsxd, OpKind::Register, OpKind::Memory) => Access::Load {
            dst: reg(0)?,
            extend: Extend::Sign,
        },
        (m, k0, k1) => {
            let op = match m {
                Mnemonic::Add => AluOp::Add,
                Mnemonic::Sub => AluOp::Sub,
                Mnemonic::Cmp => AluOp::Cmp,
                Mnemonic::And => AluOp::And,
                Mnemonic::Test => AluOp::Test,
                Mnemonic::Or => AluOp::Or,
                Mnemonic::Xor => AluOp::Xor,
                _ => return Err(form()),
            };
            let imm = || i.try_immediate(1).map(Operand::Imm).map_err(|_| form());
            match (k0, k1) {
                (OpKind::Memory, OpKind::Register) => Access::Alu {
                    op,
                    other: Operand::Reg(reg(1)?),
                    to_mem: true,
                },
                (OpKind::Memory, k) if is_immediate(k) => Access::Alu {
                    op,
                    other: imm()?,
                    to_mem: true,
                },
                (OpKind::Register, OpKind::Memory) => Access::Alu {
                    op,
                    other: Operand::Reg(reg(0)?),
                    to_mem: false,
                },
                _ => return Err(form()),
            }
        }
    };
    if let Access::Load { dst: r, .. }
    | Access::StoreReg { src: r }
    | Access::Alu {
        other: Operand::Reg(r),
        ..
    } = access
        && (r.size as usize) < size
    {
        return Err(form());
    }
    Ok(MmioInsn {
        len: i.len() as u8,
        size: size as u8,
        access,
    })
}

fn is_immediate(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAX: u8 = 0;
    const RCX: u8 = 1;
    const RDX: u8 = 2;
    const RBX: u8 = 3;
    const RSI: u8 = 6;
    const R9: u8 = 9;
    const R15: u8 = 15;

    fn g(index: u8, size: u8) -> Gpr {
        Gpr {
            index,
            size,
            high8: false,
        }
    }
    fn load(dst: Gpr) -> Access {
        Access::Load {
            dst,
            extend: Extend::None,
        }
    }

    /// (bitness, bytes, length, access size, access).
    #[test]
    fn encodings_table() {
        let table: &[(u32, &[u8], u8, u8, Access)] = &[
            // 64-bit: mov eax, [rbx+0xf0] / mov [rbx+0xb0], eax (the LAPIC's readl/writel)
            (64, &[0x8B, 0x83, 0xF0, 0, 0, 0], 6, 4, load(g(RAX, 4))),
            (
                64,
                &[0x89, 0x83, 0xB0, 0, 0, 0],
                6,
                4,
                Access::StoreReg { src: g(RAX, 4) },
            ),
            // mov rcx, [rdx] / mov [rdx], r9
            (64, &[0x48, 0x8B, 0x0A], 3, 8, load(g(RCX, 8))),
            (
                64,
                &[0x4C, 0x89, 0x0A],
                3,
                8,
                Access::StoreReg { src: g(R9, 8) },
            ),
            // mov r15w, [rsi] / mov [rsi], r15b
            (64, &[0x66, 0x44, 0x8B, 0x3E], 4, 2, load(g(R15, 2))),
            (
                64,
                &[0x44, 0x88, 0x3E],
                3,
                1,
                Access::StoreReg { src: g(R15, 1) },
            ),
            // mov ah, [rbx] (a high-byte register)
            (
                64,
                &[0x8A, 0x23],
                2,
                1,
                Access::Load {
                    dst: Gpr {
                        index: RAX,
                        size: 1,
                        high8: true,
                    },
                    extend: Extend::None,
                },
            ),
            // mov dword [rbx+0x80], 0x10 / mov qword [rbx], -1 (imm32 sign-extended)
            (
                64,
                &[0xC7, 0x83, 0x80, 0, 0, 0, 0x10, 0, 0, 0],
                10,
                4,
                Access::StoreImm { value: 0x10 },
            ),
            (
                64,
                &[0x48, 0xC7, 0x03, 0xFF, 0xFF, 0xFF, 0xFF],
                7,
                8,
                Access::StoreImm { value: u64::MAX },
            ),
            (
                64,
                &[0xC6, 0x03, 0x5A],
                3,
                1,
                Access::StoreImm { value: 0x5A },
            ),
            // movzx eax, word [rbx] / movsx rcx, byte [rdx] / movsxd rdx, dword [rbx]
            (
                64,
                &[0x0F, 0xB7, 0x03],
                3,
                2,
                Access::Load {
                    dst: g(RAX, 4),
                    extend: Extend::Zero,
                },
            ),
            (
                64,
                &[0x48, 0x0F, 0xBE, 0x0A],
                4,
                1,
                Access::Load {
                    dst: g(RCX, 8),
                    extend: Extend::Sign,
                },
            ),
            (
                64,
                &[0x48, 0x63, 0x13],
                3,
                4,
                Access::Load {
                    dst: g(RDX, 8),
                    extend: Extend::Sign,
                },
            ),
            // mov eax, [moffs64]
            (
                64,
                &[0xA1, 0, 0, 0xE0, 0xFE, 0, 0, 0, 0],
                9,
                4,
                load(g(RAX, 4)),
            ),
            // mov eax, [rip+disp32]
            (64, &[0x8B, 0x05, 0x10, 0, 0, 0], 6, 4, load(g(RAX, 4))),
            // 32-bit: mov eax, [0xfee00020] / mov [ebx], ecx / mov dword [ebx+0x300], 0x4500
            (32, &[0xA1, 0x20, 0x00, 0xE0, 0xFE], 5, 4, load(g(RAX, 4))),
            (32, &[0x89, 0x0B], 2, 4, Access::StoreReg { src: g(RCX, 4) }),
            (
                32,
                &[0xC7, 0x83, 0x00, 0x03, 0, 0, 0x00, 0x45, 0, 0],
                10,
                4,
                Access::StoreImm { value: 0x4500 },
            ),
            // 16-bit (real mode): mov ax, [si] / mov [bx], eax (operand-size prefix)
            // / mov word [bx+2], 0x1234 / mov eax, [es:di] with address-size prefix
            (16, &[0x8B, 0x04], 2, 2, load(g(RAX, 2))),
            (
                16,
                &[0x66, 0x89, 0x07],
                3,
                4,
                Access::StoreReg { src: g(RAX, 4) },
            ),
            (
                16,
                &[0xC7, 0x47, 0x02, 0x34, 0x12],
                5,
                2,
                Access::StoreImm { value: 0x1234 },
            ),
            (16, &[0x67, 0x66, 0x26, 0x8B, 0x07], 5, 4, load(g(RAX, 4))),
            (16, &[0x8A, 0x1C], 2, 1, load(g(RBX, 1))),
            (
                16,
                &[0x88, 0x34],
                2,
                1,
                Access::StoreReg {
                    src: Gpr {
                        index: RDX,
                        size: 1,
                        high8: true,
                    },
                },
            ),
            (
                64,
                &[0x40, 0x88, 0x34, 0x24],
                4,
                1,
                Access::StoreReg { src: g(RSI, 1) },
            ),
        ];
        for (n, &(bits, bytes, len, size, access)) in table.iter().enumerate() {
            // Trailing bytes after the instruction must not matter.
            let mut buf = [0x90u8; 15];
            buf[..bytes.len()].copy_from_slice(bytes);
            let d = decode(&buf, bits).unwrap_or_else(|e| panic!("row {n}: {e}"));
            assert_eq!(
                (d.len, d.size, d.access),
                (len, size, access),
                "row {n}: {bytes:02x?}"
            );
            assert_eq!(
                d.is_write(),
                !matches!(access, Access::Load { .. }),
                "row {n}"
            );
        }
    }

    #[test]
    fn unsupported_forms_are_refused() {
        for (bits, bytes) in [
            (64, &[0x0Fu8, 0xC1, 0x03][..]), // xadd [rbx], eax
            (64, &[0xF3, 0xAB]),             // rep stosd
            (64, &[0xF0, 0x09, 0x03]),       // lock or [rbx], eax
            (64, &[0x8C, 0x03]),             // mov [rbx], es
            (64, &[0x0F, 0x0B]),             // ud2
            (64, &[0x8B]),                   // cut short
            (64, &[0x48, 0x8B, 0xC3]),       // mov rax, rbx (no memory)
            (64, &[0xFF, 0xFF, 0xFF, 0xFF]), // invalid
            (16, &[0x0F, 0x01, 0x16, 0, 0]), // lgdt
        ] {
            assert!(decode(bytes, bits).is_err(), "{bytes:02x?}");
        }
    }

    #[test]
    fn alu_forms_compute_flags_like_the_cpu() {
        const CF: u64 = 1;
        const PF: u64 = 1 << 2;
        const ZF: u64 = 1 << 6;
        const SF: u64 = 1 << 7;
        const OF: u64 = 1 << 11;
        let run = |bits: u32, bytes: &[u8], regs: &mut [u64; 16], mem: u64| {
            let d = decode(bytes, bits).unwrap();
            let mut fl = 0x202u64;
            let w = d.execute(regs, &mut fl, &mut || mem);
            (d, w, fl & ALU_FLAGS, fl & !ALU_FLAGS)
        };
        let mut r = [0u64; 16];
        // cmp dword [r12+0x100020], 0 (the form rustc made of a volatile load): ZF.
        let (d, w, f, rest) = run(
            64,
            &[0x41, 0x83, 0xBC, 0x24, 0x20, 0x00, 0x10, 0x00, 0x00],
            &mut r,
            0,
        );
        assert_eq!((d.len, d.size, w, f, rest), (9, 4, None, ZF | PF, 0x202));
        assert!(!d.is_write() && d.is_read());
        // cmp byte [rbx], 1 with 0: borrow, sign.
        let (_, _, f, _) = run(64, &[0x80, 0x3B, 0x01], &mut r, 0);
        assert_eq!(f, CF | SF | PF | (1 << 4));
        // add dword [rbx], 1 on 0x7fffffff: overflow, the result is written.
        let (d, w, f, _) = run(64, &[0x83, 0x03, 0x01], &mut r, 0x7FFF_FFFF);
        assert!(d.is_write());
        assert_eq!(w, Some(0x8000_0000));
        assert_eq!(f & (OF | SF | CF), OF | SF);
        // or [rbx], eax / and eax, [rbx] (register result) / test [rbx], ecx.
        r[0] = 0xF0;
        let (_, w, _, _) = run(64, &[0x09, 0x03], &mut r, 0x0F);
        assert_eq!(w, Some(0xFF));
        let (d, w, _, _) = run(64, &[0x23, 0x03], &mut r, 0x30);
        assert_eq!((w, r[0], d.is_write()), (None, 0x30, false));
        r[1] = 0x100;
        let (_, w, f, _) = run(64, &[0x85, 0x0B], &mut r, 0xFF);
        assert_eq!((w, f & ZF), (None, ZF));
        // 16-bit: sub word [bx], 1 (immediate sign-extended to 16 bits).
        let (d, w, _, _) = run(16, &[0x83, 0x2F, 0x01], &mut r, 0);
        assert_eq!((d.size, w), (2, Some(0xFFFF)));
    }

    #[test]
    fn register_writes_follow_x86_widths() {
        let mut r = [0u64; 16];
        r[RAX as usize] = 0x1122_3344_5566_7788;
        g(RAX, 4).write(&mut r, 0xAABB_CCDD);
        assert_eq!(r[0], 0xAABB_CCDD, "32-bit writes zero the upper half");
        g(RAX, 2).write(&mut r, 0x1234_5678);
        assert_eq!(r[0], 0xAABB_5678);
        let ah = Gpr {
            index: RAX,
            size: 1,
            high8: true,
        };
        ah.write(&mut r, 0x99);
        assert_eq!(r[0], 0xAABB_9978);
        assert_eq!(ah.read(&r), 0x99);
        // Loads: sign and zero extension.
        let movsx = decode(&[0x48, 0x0F, 0xBE, 0x0A], 64).unwrap();
        movsx.complete_load(&mut r, 0x80);
        assert_eq!(r[RCX as usize], 0xFFFF_FFFF_FFFF_FF80);
        let movzx = decode(&[0x0F, 0xB7, 0x03], 64).unwrap();
        movzx.complete_load(&mut r, u64::MAX);
        assert_eq!(r[0], 0xFFFF);
        let st = decode(&[0x88, 0x34], 16).unwrap();
        r[RDX as usize] = 0xAB00;
        assert_eq!(st.store_value(&r), 0xAB);
    }
}
