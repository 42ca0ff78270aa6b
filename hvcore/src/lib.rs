//! placeholder: see docs/ARCHITECTURE.md
#![no_std]
