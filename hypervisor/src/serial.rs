//! 16550 UART driver (polled). COM1 (0x3f8) by default; port, speed and
//! framing come from `com1=`/`com2=`.

use crate::arch::{inb, outb};
use hvcore::cmdline::{Parity, SerialConfig};

const THR: u16 = 0;
const IER: u16 = 1;
const DLL: u16 = 0;
const DLM: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_THRE: u8 = 1 << 5;
const LSR_DR: u8 = 1 << 0;
const RBR: u16 = 0;

/// An initialised UART.
#[derive(Debug, Clone, Copy)]
pub struct Uart {
    base: u16,
}

impl Uart {
    /// Program the UART at `cfg.io_base`.
    pub fn init(cfg: &SerialConfig) -> Uart {
        let base = cfg.io_base;
        let divisor = (115_200 / cfg.baud.max(1)).max(1) as u16;
        let mut lcr = cfg.data_bits.saturating_sub(5) & 3;
        if cfg.stop_bits == 2 {
            lcr |= 1 << 2;
        }
        lcr |= match cfg.parity {
            Parity::None => 0,
            Parity::Odd => 0b001 << 3,
            Parity::Even => 0b011 << 3,
            Parity::Mark => 0b101 << 3,
            Parity::Space => 0b111 << 3,
        };
        // SAFETY: the console owns the UART at this port (the command line named it).
        unsafe {
            outb(base + IER, 0);
            outb(base + LCR, 0x80);
            outb(base + DLL, divisor as u8);
            outb(base + DLM, (divisor >> 8) as u8);
            outb(base + LCR, lcr);
            outb(base + FCR, 0xC7);
            outb(base + MCR, 0x03);
        }
        Uart { base }
    }

    /// Write one byte, waiting (bounded) for the transmitter.
    pub fn put(&self, b: u8) {
        for _ in 0..100_000 {
            // SAFETY: reading the line status register of our UART.
            if unsafe { inb(self.base + LSR) } & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        // SAFETY: writing the transmit register of our UART.
        unsafe { outb(self.base + THR, b) }
    }

    /// Bytes the transmit FIFO takes when it is empty (16550, FIFO enabled).
    pub const FIFO: usize = 16;

    /// Whether the transmitter's FIFO is empty (takes [`Self::FIFO`] bytes).
    pub fn tx_empty(&self) -> bool {
        // SAFETY: reading the line status register of our UART.
        unsafe { inb(self.base + LSR) & LSR_THRE != 0 }
    }

    /// Write one byte without waiting (after [`Self::tx_empty`]).
    pub fn put_now(&self, b: u8) {
        // SAFETY: writing the transmit register of our UART.
        unsafe { outb(self.base + THR, b) }
    }

    /// A received byte, if one is waiting.
    pub fn get(&self) -> Option<u8> {
        // SAFETY: reading the line status and receive registers of our UART.
        unsafe {
            if inb(self.base + LSR) & LSR_DR != 0 {
                Some(inb(self.base + RBR))
            } else {
                None
            }
        }
    }

    /// Write bytes, turning "\n" into "\r\n".
    pub fn write(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }
}
