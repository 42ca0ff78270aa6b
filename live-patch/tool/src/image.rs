//! A Warden image file, as the engine sees the running image: build-id,
//! embedded symbol table, text. Lets `livepatch verify --image` run the
//! hypervisor's own upload checks offline.

use crate::{Error, Result};
use livepatch_engine::{AllocRequest, Allocation, Image, Level, Patcher, Platform, QuiesceError};
use object::{Object, ObjectSection};
use std::fmt;
use std::path::Path;

/// An image file's parts.
#[derive(Debug, Clone)]
pub struct ImageFile {
    pub build_id: Vec<u8>,
    pub symtab: Vec<u8>,
    pub text_addr: u64,
    pub text: Vec<u8>,
    /// End of the loaded image (payload memory is simulated after it).
    pub end: u64,
}

impl ImageFile {
    pub fn read(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&data).map_err(|e| Error(format!("{}: {e}", path.display())))
    }

    pub fn parse(data: &[u8]) -> std::result::Result<Self, String> {
        let file = object::File::parse(data).map_err(|e| format!("not an ELF image: {e}"))?;
        let build_id = match file.build_id() {
            Ok(Some(id)) => id.to_vec(),
            _ => return Err("no GNU build-id note (not a Warden image?)".into()),
        };
        let sect = |name: &str| {
            file.section_by_name(name)
                .ok_or_else(|| format!("no {name} section (not a Warden image?)"))
        };
        let ws = sect(".wsymtab")?;
        let symtab = ws.data().map_err(|e| e.to_string())?.to_vec();
        warden_symbols::SymbolTable::parse(&symtab).map_err(|e| {
            format!("embedded symbol table: {e} (image not post-processed by cargo xtask?)")
        })?;
        let t = sect(".text")?;
        let text = t.data().map_err(|e| e.to_string())?.to_vec();
        let end = file
            .sections()
            .filter(|s| s.address() != 0)
            .map(|s| s.address() + s.size())
            .max()
            .unwrap_or(0);
        Ok(ImageFile {
            build_id,
            symtab,
            text_addr: t.address(),
            text,
            end,
        })
    }

    /// The engine's view (borrows `self`).
    pub fn image(&self) -> Image<'_> {
        Image {
            build_id: &self.build_id,
            symbols: warden_symbols::SymbolTable::parse(&self.symtab).expect("checked in parse"),
            text: (self.text_addr, self.text_addr + self.text.len() as u64),
        }
    }
}

/// A platform over an image file: uploads are checked and relocated as the
/// hypervisor would (payload memory placed after the image), nothing runs.
#[derive(Debug)]
pub struct FilePlatform<'a> {
    pub image: &'a ImageFile,
    next: u64,
    pub log: Vec<String>,
}

impl<'a> FilePlatform<'a> {
    pub fn new(image: &'a ImageFile) -> Self {
        FilePlatform {
            image,
            next: (image.end + 0x10_0000 + 0xfff) & !0xfff,
            log: Vec::new(),
        }
    }
}

impl Platform for FilePlatform<'_> {
    fn alloc(&mut self, req: &AllocRequest) -> Option<Allocation> {
        let base = self.next;
        self.next += req.text + req.ro + req.rw;
        Some(Allocation {
            text: base,
            ro: base + req.text,
            rw: base + req.text + req.ro,
            cookie: 0,
        })
    }
    fn install(&mut self, _: &Allocation, _: &[u8], _: &[u8], _: &[u8]) {}
    fn free(&mut self, _: &Allocation) {}
    fn read_text(&self, addr: u64, buf: &mut [u8]) {
        let off = addr.saturating_sub(self.image.text_addr) as usize;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.image.text.get(off + i).copied().unwrap_or(0);
        }
    }
    unsafe fn call_hook(&mut self, _: u64) -> i32 {
        0
    }
    fn quiesce(
        &mut self,
        _: u64,
        _: &mut dyn FnMut(&mut dyn Patcher),
    ) -> std::result::Result<u64, QuiesceError> {
        Err(QuiesceError::Timeout {
            arrived: 0,
            cpus: 0,
        })
    }
    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>) {
        self.log.push(format!("{level:?}: {msg}"));
    }
}
