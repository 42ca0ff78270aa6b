//! The m4 subset that SELinux/Xen policy sources use, with m4's rescanning
//! semantics: `define`, `undefine`, `ifdef`, `ifelse`, `dnl`, quotes `` ` `` and
//! `'`, `$0`..`$9` (and `$10`...), `$#`, `$*`, `$@`, `shift`, `divert`,
//! `include`/`sinclude` (relative to the including file), `errprint`, plus
//! `pushdef`/`popdef`, `incr`/`decr`, `len` and `__file__`/`__line__`.
//!
//! Every output byte carries the [`Pos`] it came from; text produced by a macro
//! body records the expansion (use site and definition site) so that later
//! diagnostics can point at both. Work is bounded: nesting depth, the number of
//! expansions and the bytes produced by expansions are all limited, so a
//! runaway recursive macro ends in an error, never a hang or unbounded memory.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::diag::{Diagnostic, Errors, Expansion, Pos, SourceMap};
use rustc_hash::FxHashMap as FxMap;

/// Text with a source position for every byte, stored compactly: a new segment
/// starts wherever a byte's position does not follow from the previous byte's
/// (the next column, or the next line after a newline).
#[derive(Clone, Debug, Default)]
pub struct Text {
    pub bytes: Vec<u8>,
    /// (offset of the segment's first byte, its position)
    segs: Vec<(usize, Pos)>,
    /// The position a byte appended next would have if it continued the last segment.
    end: Pos,
}

/// The position of the byte after `b`, which is at `p`.
#[inline]
pub fn advance(p: Pos, b: u8) -> Pos {
    if b == b'\n' {
        Pos {
            line: p.line.saturating_add(1),
            col: 1,
            ..p
        }
    } else {
        Pos {
            col: p.col.saturating_add(1),
            ..p
        }
    }
}

fn advance_over(mut p: Pos, bytes: &[u8]) -> Pos {
    let nl = bytes.iter().filter(|&&b| b == b'\n').count();
    if nl == 0 {
        p.col = p
            .col
            .saturating_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    } else {
        let last = bytes.iter().rposition(|&b| b == b'\n').unwrap_or(0);
        p.line = p.line.saturating_add(u32::try_from(nl).unwrap_or(u32::MAX));
        p.col = u32::try_from(bytes.len() - last).unwrap_or(u32::MAX);
    }
    p
}

impl Text {
    pub fn push(&mut self, b: u8, p: Pos) {
        if self.segs.is_empty() || p != self.end {
            self.segs.push((self.bytes.len(), p));
        }
        self.bytes.push(b);
        self.end = advance(p, b);
    }

    /// Appends `bytes`, the first at `p` and the rest following on from it.
    pub fn push_run(&mut self, bytes: &[u8], p: Pos) {
        if bytes.is_empty() {
            return;
        }
        if self.segs.is_empty() || p != self.end {
            self.segs.push((self.bytes.len(), p));
        }
        self.bytes.extend_from_slice(bytes);
        self.end = advance_over(p, bytes);
    }

    /// Appends `t[start..end]` with its positions; `map` rewrites each segment's position.
    pub fn extend_range_map(
        &mut self,
        t: &Text,
        start: usize,
        end: usize,
        map: impl Fn(Pos) -> Pos,
    ) {
        if start >= end {
            return;
        }
        let k = t.seg_index(start);
        let p = t.pos_in_seg(k, start);
        self.extend_from(t, k, p, start, end, map);
    }

    /// Appends `t[start..end]`, where byte `start` is in segment `k` at position `p`
    /// (what a [`Cursor`] or frame already knows, so nothing is searched or rescanned).
    fn extend_from(
        &mut self,
        t: &Text,
        mut k: usize,
        mut p: Pos,
        start: usize,
        end: usize,
        map: impl Fn(Pos) -> Pos,
    ) {
        let mut at = start;
        while at < end {
            let seg_end = t
                .segs
                .get(k + 1)
                .map(|s| s.0)
                .unwrap_or(t.bytes.len())
                .min(end);
            self.push_run(&t.bytes[at..seg_end], map(p));
            at = seg_end;
            k += 1;
            if let Some(s) = t.segs.get(k) {
                p = s.1;
            }
        }
    }

    pub fn extend(&mut self, t: &Text) {
        self.extend_range_map(t, 0, t.bytes.len(), |p| p);
    }

    pub fn push_str(&mut self, s: &[u8], p: Pos) {
        for &b in s {
            self.push(b, p);
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes of memory the text takes (its bytes and position segments).
    pub fn mem_cost(&self) -> u64 {
        (self.bytes.len() + self.segs.len() * std::mem::size_of::<(usize, Pos)>()) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn first_pos(&self) -> Option<Pos> {
        self.segs.first().map(|s| s.1)
    }

    /// The segment holding byte `i`.
    fn seg_index(&self, i: usize) -> usize {
        self.segs.partition_point(|s| s.0 <= i).saturating_sub(1)
    }

    fn pos_in_seg(&self, k: usize, i: usize) -> Pos {
        match self.segs.get(k) {
            Some(&(off, p)) => advance_over(p, &self.bytes[off..i]),
            None => Pos::default(),
        }
    }

    /// The position of byte `i` (not for hot loops: use a [`Cursor`]).
    pub fn pos_at(&self, i: usize) -> Pos {
        self.pos_in_seg(self.seg_index(i), i)
    }

    /// Removes and returns the first `k` bytes (with their positions); only the
    /// rest is copied.
    pub fn split_to(&mut self, k: usize) -> Text {
        let k = k.min(self.bytes.len());
        let idx = self.seg_index(k);
        let pk = self.pos_in_seg(idx, k);
        let tail_bytes = self.bytes.split_off(k);
        let mut tail_segs: Vec<(usize, Pos)> = Vec::new();
        if !tail_bytes.is_empty() {
            tail_segs.push((0, pk));
            for &(off, p) in self.segs.iter().skip(idx + 1) {
                tail_segs.push((off - k, p));
            }
        }
        let mut head_segs = std::mem::take(&mut self.segs);
        head_segs.truncate(if k == 0 {
            0
        } else {
            self.seg_index_in(&head_segs, k - 1) + 1
        });
        let head = Text {
            bytes: std::mem::replace(&mut self.bytes, tail_bytes),
            segs: head_segs,
            end: pk,
        };
        self.segs = tail_segs;
        head
    }

    fn seg_index_in(&self, segs: &[(usize, Pos)], i: usize) -> usize {
        segs.partition_point(|s| s.0 <= i).saturating_sub(1)
    }

    /// The position after the last byte.
    pub fn end_pos(&self) -> Pos {
        self.end
    }

    /// Rewrites every segment's position.
    pub fn map_pos(&mut self, f: impl Fn(Pos) -> Pos) {
        for s in &mut self.segs {
            s.1 = f(s.1);
        }
        self.end = f(self.end);
    }

    /// Positions for `bytes` read from file `file` starting at line 1, column 1.
    pub fn from_file(bytes: Vec<u8>, file: u32) -> Text {
        let mut t = Text::default();
        t.push_run(
            &bytes,
            Pos {
                file,
                line: 1,
                col: 1,
                exp: 0,
            },
        );
        t
    }

    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            t: self,
            idx: 0,
            seg: 0,
            pos: self.first_pos().unwrap_or_default(),
        }
    }
}

/// A [`Cursor`] that does not borrow its text (pass the text to each call).
#[derive(Clone, Copy, Debug, Default)]
pub struct CursorState {
    idx: usize,
    seg: usize,
    pos: Pos,
}

impl CursorState {
    pub fn new(t: &Text) -> CursorState {
        CursorState {
            idx: 0,
            seg: 0,
            pos: t.first_pos().unwrap_or_default(),
        }
    }

    /// The position of byte `i` of `t`; `i` must not decrease between calls.
    pub fn pos(&mut self, t: &Text, i: usize) -> Pos {
        while self.idx < i {
            let next_seg = t.segs.get(self.seg + 1).map(|s| s.0).unwrap_or(usize::MAX);
            if next_seg <= i {
                self.seg += 1;
                self.idx = next_seg;
                self.pos = t.segs[self.seg].1;
            } else {
                self.pos = advance_over(self.pos, &t.bytes[self.idx..i]);
                self.idx = i;
            }
        }
        self.pos
    }
}

/// Sequential access to the positions of a [`Text`].
pub struct Cursor<'a> {
    t: &'a Text,
    idx: usize,
    seg: usize,
    pos: Pos,
}

impl Cursor<'_> {
    /// The position of byte `i`; `i` must not decrease between calls.
    pub fn pos(&mut self, i: usize) -> Pos {
        while self.idx < i {
            let next_seg = self
                .t
                .segs
                .get(self.seg + 1)
                .map(|s| s.0)
                .unwrap_or(usize::MAX);
            if next_seg <= i {
                self.seg += 1;
                self.idx = next_seg;
                self.pos = self.t.segs[self.seg].1;
            } else {
                self.pos = advance_over(self.pos, &self.t.bytes[self.idx..i]);
                self.idx = i;
            }
        }
        self.pos
    }
}

/// Resource limits of one expansion run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Maximum nesting of pending expansions and includes.
    pub max_depth: usize,
    /// Maximum number of macro calls.
    pub max_expansions: u64,
    /// Maximum bytes produced by all expansions together (bounds memory).
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 1024,
            max_expansions: 2_000_000,
            max_bytes: 256 << 20,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Builtin {
    Define,
    Pushdef,
    Popdef,
    Undefine,
    Ifdef,
    Ifelse,
    Dnl,
    Shift,
    Divert,
    Include,
    Sinclude,
    Errprint,
    Incr,
    Decr,
    Len,
    File,
    Line,
}

impl Builtin {
    /// Builtins that are recognised only when followed by `(`.
    fn needs_args(self) -> bool {
        !matches!(
            self,
            Builtin::Dnl | Builtin::Divert | Builtin::File | Builtin::Line
        )
    }
}

#[derive(Clone, Debug)]
enum Macro {
    Builtin(Builtin),
    User {
        body: Rc<Text>,
        def: Option<Pos>,
        /// The body split at its `$` references, once, when it is defined.
        tmpl: Rc<[Piece]>,
    },
}

/// A piece of a macro body: literal text or a `$` reference.
#[derive(Clone, Debug)]
enum Piece {
    /// body bytes `start..end`; `start` is in segment `seg` at position `pos`
    Lit {
        start: usize,
        end: usize,
        seg: usize,
        pos: Pos,
    },
    /// `$k` (k >= 1)
    Arg(usize),
    /// `$0`
    Name,
    /// `$#`, at this position
    Count(Pos),
    /// `$*`
    Star,
    /// `$@`
    At,
}

fn user_macro(body: Text, def: Option<Pos>) -> Macro {
    let tmpl = template(&body);
    Macro::User {
        body: Rc::new(body),
        def,
        tmpl: tmpl.into(),
    }
}

/// Splits a body into [`Piece`]s.
fn template(body: &Text) -> Vec<Piece> {
    let b = &body.bytes;
    let mut cur = body.cursor();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            let n = b[i + 1];
            if n.is_ascii_digit() {
                let mut j = i + 1;
                let mut k: usize = 0;
                while j < b.len() && b[j].is_ascii_digit() {
                    k = k
                        .saturating_mul(10)
                        .saturating_add(usize::from(b[j] - b'0'));
                    j += 1;
                }
                out.push(if k == 0 { Piece::Name } else { Piece::Arg(k) });
                i = j;
                continue;
            }
            match n {
                b'#' => {
                    out.push(Piece::Count(cur.pos(i)));
                    i += 2;
                    continue;
                }
                b'*' => {
                    out.push(Piece::Star);
                    i += 2;
                    continue;
                }
                b'@' => {
                    out.push(Piece::At);
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        // literal run up to the next `$`
        let j = b[i + 1..]
            .iter()
            .position(|&x| x == b'$')
            .map(|k| i + 1 + k)
            .unwrap_or(b.len());
        let pos = cur.pos(i);
        out.push(Piece::Lit {
            start: i,
            end: j,
            seg: cur.seg,
            pos,
        });
        i = j;
    }
    out
}

struct Frame {
    text: Rc<Text>,
    idx: usize,
    /// segment of `idx` and the position of byte `idx`
    seg: usize,
    pos: Pos,
}

impl Frame {
    fn new(text: Rc<Text>) -> Frame {
        let pos = text.first_pos().unwrap_or_default();
        Frame {
            text,
            idx: 0,
            seg: 0,
            pos,
        }
    }

    /// Moves to byte `i` (not before the current one).
    fn seek(&mut self, i: usize) {
        while self.idx < i {
            let next_seg = self
                .text
                .segs
                .get(self.seg + 1)
                .map(|s| s.0)
                .unwrap_or(usize::MAX);
            if next_seg <= i {
                self.seg += 1;
                self.idx = next_seg;
                self.pos = self.text.segs[self.seg].1;
            } else {
                self.pos = advance_over(self.pos, &self.text.bytes[self.idx..i]);
                self.idx = i;
            }
        }
    }

    fn bump(&mut self) {
        let i = self.idx;
        let next_seg = self
            .text
            .segs
            .get(self.seg + 1)
            .map(|s| s.0)
            .unwrap_or(usize::MAX);
        if next_seg == i + 1 {
            self.seg += 1;
            self.pos = self.text.segs[self.seg].1;
        } else if let Some(&b) = self.text.bytes.get(i) {
            self.pos = advance(self.pos, b);
        }
        self.idx = i + 1;
    }
}

/// What a file name in `include` resolves against.
pub trait FileLoader {
    /// Reads `path`; `Err` carries the OS error text.
    fn load(&mut self, path: &Path) -> Result<Vec<u8>, String>;
}

/// Reads files from the file system.
#[derive(Debug, Default)]
pub struct FsLoader;

impl FileLoader for FsLoader {
    fn load(&mut self, path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| e.to_string())
    }
}

/// The macro expander.
pub struct Expander<'a> {
    sm: &'a mut SourceMap,
    loader: &'a mut dyn FileLoader,
    macros: FxMap<Vec<u8>, Vec<Macro>>,
    stack: Vec<Frame>,
    diversions: Vec<(i64, Text)>,
    current: i64,
    limits: Limits,
    expansions: u64,
    bytes: u64,
    /// errprint output and warnings.
    pub messages: Vec<Diagnostic>,
    cmdline_file: u32,
    /// Macro calls whose argument lists are being collected (Rust recursion depth).
    arg_nesting: usize,
    /// A filter on (length, first byte, last byte) of every name ever defined: a
    /// name that misses it is certainly not a macro, without hashing it.
    name_filter: Vec<u64>,
    /// Where finished output goes while expansion continues (see [`Expander::stream_to`]).
    sink: Option<std::sync::mpsc::SyncSender<Text>>,
}

/// Output is handed to the sink in pieces of about this size, cut after a newline.
const CHUNK: usize = 256 * 1024;

enum Tok {
    Quoted(Text),
    Comment(Text),
    Name(Text),
    Char(u8, Pos),
}

/// Index of a name in [`Expander::name_filter`] (4096 bits).
#[inline]
fn filter_index(name: &[u8]) -> usize {
    let (f, l) = (
        name.first().copied().unwrap_or(0),
        name.last().copied().unwrap_or(0),
    );
    ((name.len() & 15) << 8) | usize::from(f.wrapping_mul(31) ^ l)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'a> Expander<'a> {
    pub fn new(sm: &'a mut SourceMap, loader: &'a mut dyn FileLoader, limits: Limits) -> Self {
        let cmdline_file = sm.add_file("<command line>".to_string(), Vec::new());
        let mut macros = FxMap::default();
        for (n, b) in [
            ("define", Builtin::Define),
            ("pushdef", Builtin::Pushdef),
            ("popdef", Builtin::Popdef),
            ("undefine", Builtin::Undefine),
            ("ifdef", Builtin::Ifdef),
            ("ifelse", Builtin::Ifelse),
            ("dnl", Builtin::Dnl),
            ("shift", Builtin::Shift),
            ("divert", Builtin::Divert),
            ("include", Builtin::Include),
            ("sinclude", Builtin::Sinclude),
            ("errprint", Builtin::Errprint),
            ("incr", Builtin::Incr),
            ("decr", Builtin::Decr),
            ("len", Builtin::Len),
            ("__file__", Builtin::File),
            ("__line__", Builtin::Line),
        ] {
            macros.insert(n.as_bytes().to_vec(), vec![Macro::Builtin(b)]);
        }
        let mut name_filter = vec![0u64; 64];
        for k in macros.keys() {
            let h = filter_index(k);
            name_filter[h / 64] |= 1 << (h % 64);
        }
        Expander {
            sm,
            loader,
            macros,
            stack: Vec::new(),
            diversions: vec![(0, Text::default())],
            current: 0,
            limits,
            expansions: 0,
            bytes: 0,
            messages: Vec::new(),
            cmdline_file,
            arg_nesting: 0,
            name_filter,
            sink: None,
        }
    }

    /// `-D NAME[=VALUE]`, as `m4 -D`.
    pub fn define_cmdline(&mut self, spec: &str) {
        let (name, value) = spec.split_once('=').unwrap_or((spec, ""));
        let p = Pos {
            file: self.cmdline_file,
            line: 1,
            col: 1,
            exp: 0,
        };
        let mut body = Text::default();
        body.push_str(value.as_bytes(), p);
        let h = filter_index(name.as_bytes());
        self.name_filter[h / 64] |= 1 << (h % 64);
        self.macros
            .insert(name.as_bytes().to_vec(), vec![user_macro(body, None)]);
    }

    /// Sends the output, in pieces cut after newlines (so no token is split), to
    /// `tx` as it is produced; `run` then returns only what was not sent. If the
    /// receiver goes away (it found an error), expansion stops quietly.
    pub fn stream_to(&mut self, tx: std::sync::mpsc::SyncSender<Text>) {
        self.sink = Some(tx);
    }

    /// Hands finished diversion-0 output to the sink.
    fn flush(&mut self, all: bool) {
        let Some(tx) = &self.sink else { return };
        let Some(d) = self.diversions.iter_mut().find(|d| d.0 == 0) else {
            return;
        };
        if d.1.len() < CHUNK && !all {
            return;
        }
        let cut = if all {
            d.1.len()
        } else {
            match d.1.bytes.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => return,
            }
        };
        let piece = d.1.split_to(cut);
        if !piece.is_empty() && tx.send(piece).is_err() {
            // the consumer stopped (it reports its own error): stop producing
            self.sink = None;
            self.stack.clear();
        }
    }

    /// Orders the diversions into the final output (or sends it to the sink).
    fn finish(mut self) -> (Text, Vec<Diagnostic>) {
        let mut divs = std::mem::take(&mut self.diversions);
        divs.sort_by_key(|d| d.0);
        let mut out = Text::default();
        for (n, t) in divs {
            if n >= 0 {
                out.extend(&t);
            }
        }
        if let Some(tx) = self.sink.take() {
            if !out.is_empty() {
                let _ = tx.send(out);
            }
            return (Text::default(), self.messages);
        }
        (out, self.messages)
    }

    /// Expands `files` (read in order as one stream) and returns the output.
    pub fn run(mut self, files: &[PathBuf]) -> Result<(Text, Vec<Diagnostic>), Errors> {
        let mut texts = Vec::new();
        for f in files {
            let data = self.loader.load(f).map_err(|e| {
                Errors::one(Diagnostic::error(
                    None,
                    format!("cannot read {}: {e}", f.display()),
                ))
            })?;
            let id = self.sm.add_file(f.display().to_string(), data.clone());
            texts.push(Text::from_file(data, id));
        }
        for t in texts.into_iter().rev() {
            self.stack.push(Frame::new(Rc::new(t)));
        }
        self.expand_top()?;
        Ok(self.finish())
    }

    /// Expands an in-memory source (used by tests and the fuzzer).
    pub fn run_text(mut self, name: &str, src: &[u8]) -> Result<(Text, Vec<Diagnostic>), Errors> {
        let id = self.sm.add_file(name.to_string(), src.to_vec());
        self.stack
            .push(Frame::new(Rc::new(Text::from_file(src.to_vec(), id))));
        self.expand_top()?;
        Ok(self.finish())
    }

    fn peek(&mut self) -> Option<(u8, Pos)> {
        while let Some(f) = self.stack.last() {
            if f.idx < f.text.bytes.len() {
                return Some((f.text.bytes[f.idx], f.pos));
            }
            self.stack.pop();
        }
        None
    }

    fn bump(&mut self) {
        if let Some(f) = self.stack.last_mut() {
            f.bump();
        }
    }

    fn next(&mut self) -> Option<(u8, Pos)> {
        let r = self.peek();
        if r.is_some() {
            self.bump();
        }
        r
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> Errors {
        Errors::one(Diagnostic::error(Some(pos), msg))
    }

    /// Reads one token (quotes stripped one level, comments whole).
    fn read_tok(&mut self) -> Result<Option<Tok>, Errors> {
        let Some((c, p)) = self.next() else {
            return Ok(None);
        };
        match c {
            b'`' => {
                let mut depth = 1u32;
                let mut t = Text::default();
                loop {
                    let Some((c2, p2)) = self.next() else {
                        return Err(self.err(
                            p,
                            "end of input inside a quoted string (unbalanced ` and ')",
                        ));
                    };
                    if c2 == b'`' {
                        depth += 1;
                    } else if c2 == b'\'' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    t.push(c2, p2);
                }
                Ok(Some(Tok::Quoted(t)))
            }
            b'#' => {
                let mut t = Text::default();
                t.push(c, p);
                while let Some((c2, p2)) = self.next() {
                    t.push(c2, p2);
                    if c2 == b'\n' {
                        break;
                    }
                }
                Ok(Some(Tok::Comment(t)))
            }
            c if is_name_start(c) => {
                let mut t = Text::default();
                t.push(c, p);
                while let Some((c2, p2)) = self.peek() {
                    if !is_name_char(c2) {
                        break;
                    }
                    t.push(c2, p2);
                    self.bump();
                }
                Ok(Some(Tok::Name(t)))
            }
            _ => Ok(Some(Tok::Char(c, p))),
        }
    }

    fn emit(&mut self, t: &Text) {
        if self.current < 0 {
            return;
        }
        let cur = self.current;
        if let Some(d) = self.diversions.iter_mut().find(|d| d.0 == cur) {
            d.1.extend(t);
        } else {
            self.diversions.push((cur, t.clone()));
        }
    }

    fn emit_byte(&mut self, b: u8, p: Pos) {
        if self.current < 0 {
            return;
        }
        let cur = self.current;
        if let Some(d) = self.diversions.iter_mut().find(|d| d.0 == cur) {
            d.1.push(b, p);
        } else {
            let mut t = Text::default();
            t.push(b, p);
            self.diversions.push((cur, t));
        }
    }

    /// Copies the longest run at the top of the input that needs no expansion
    /// (no quote, comment, or macro name; `stop` bytes end the run too) to the
    /// current output (`out` = None) or to `out`. Returns whether anything was copied.
    fn fast_run(&mut self, stop: &[u8], out: Option<&mut Text>) -> bool {
        let Expander {
            stack,
            macros,
            diversions,
            current,
            name_filter,
            ..
        } = self;
        let deeper = stack.len() > 1;
        let Some(f) = stack.last_mut() else {
            return false;
        };
        let bytes = &f.text.bytes;
        let start = f.idx;
        let mut i = start;
        let n = bytes.len();
        while i < n {
            let c = bytes[i];
            if c == b'`' || c == b'#' || stop.contains(&c) {
                break;
            }
            if is_name_start(c) {
                let mut j = i + 1;
                while j < n && is_name_char(bytes[j]) {
                    j += 1;
                }
                let h = filter_index(&bytes[i..j]);
                let maybe = name_filter[h / 64] & (1 << (h % 64)) != 0;
                if (j == n && deeper) || (maybe && macros.contains_key(&bytes[i..j])) {
                    break;
                }
                i = j;
                continue;
            }
            i += 1;
        }
        if i == start {
            return false;
        }
        let text = Rc::clone(&f.text);
        let (k, p0) = (f.seg, f.pos);
        match out {
            Some(t) => t.extend_from(&text, k, p0, start, i, |p| p),
            None => {
                if *current >= 0 {
                    let cur = *current;
                    let d = match diversions.iter_mut().position(|d| d.0 == cur) {
                        Some(k) => &mut diversions[k].1,
                        None => {
                            diversions.push((cur, Text::default()));
                            &mut diversions.last_mut().expect("just pushed").1
                        }
                    };
                    d.extend_from(&text, k, p0, start, i, |p| p);
                }
            }
        }
        f.seek(i);
        true
    }

    fn expand_top(&mut self) -> Result<(), Errors> {
        loop {
            if self.sink.is_some() {
                self.flush(false);
            }
            if self.fast_run(&[], None) {
                continue;
            }
            let Some(tok) = self.read_tok()? else {
                break;
            };
            match tok {
                Tok::Quoted(t) | Tok::Comment(t) => self.emit(&t),
                Tok::Char(c, p) => self.emit_byte(c, p),
                Tok::Name(t) => {
                    if !self.maybe_call(&t)? {
                        self.emit(&t);
                    }
                }
            }
        }
        Ok(())
    }

    /// If `name` is a macro (and, for builtins needing arguments, `(` follows), calls it and
    /// pushes its expansion. Returns false if `name` is plain text.
    fn maybe_call(&mut self, name: &Text) -> Result<bool, Errors> {
        let Some(m) = self.macros.get(&name.bytes).and_then(|v| v.last()).cloned() else {
            return Ok(false);
        };
        let use_pos = name.first_pos().unwrap_or_default();
        let has_args = matches!(self.peek(), Some((b'(', _)));
        if let Macro::Builtin(b) = &m
            && b.needs_args()
            && !has_args
        {
            return Ok(false);
        }
        self.expansions += 1;
        if self.expansions > self.limits.max_expansions {
            return Err(self.err(
                use_pos,
                format!(
                    "macro expansion limit exceeded ({} calls) while expanding `{}`; is a macro recursive?",
                    self.limits.max_expansions,
                    String::from_utf8_lossy(&name.bytes)
                ),
            ));
        }
        let args = if has_args {
            self.bump();
            if self.arg_nesting >= self.limits.max_depth {
                return Err(self.err(
                    use_pos,
                    format!(
                        "macro calls nested more than {} levels deep in argument lists while expanding `{}`; is a macro recursive?",
                        self.limits.max_depth,
                        String::from_utf8_lossy(&name.bytes)
                    ),
                ));
            }
            self.arg_nesting += 1;
            let r = self.collect_args(name);
            self.arg_nesting -= 1;
            r?
        } else {
            Vec::new()
        };
        let name_str = String::from_utf8_lossy(&name.bytes).into_owned();
        match m {
            Macro::Builtin(b) => self.builtin(b, &name_str, use_pos, args, has_args)?,
            Macro::User { body, def, tmpl } => {
                // Refuse before building an expansion that would exceed the budget.
                let cost = substituted_cost(&body, &tmpl, &args, name);
                if self.bytes.saturating_add(cost) > self.limits.max_bytes {
                    return Err(self.too_big(use_pos, &name_str, def));
                }
                let exp_id = self.new_expansion(&name_str, use_pos, def);
                let out = substitute(&body, &tmpl, &args, name, exp_id, use_pos);
                self.push_text(out, use_pos, &name_str, def)?;
            }
        }
        Ok(true)
    }

    fn new_expansion(&mut self, name: &str, use_pos: Pos, def: Option<Pos>) -> u32 {
        self.sm.expansions.push(Expansion {
            name: name.to_string(),
            use_pos,
            def_pos: def,
        });
        u32::try_from(self.sm.expansions.len()).unwrap_or(u32::MAX)
    }

    fn push_text(
        &mut self,
        t: Text,
        use_pos: Pos,
        name: &str,
        def: Option<Pos>,
    ) -> Result<(), Errors> {
        if t.is_empty() {
            return Ok(());
        }
        self.bytes += t.mem_cost();
        if self.bytes > self.limits.max_bytes {
            return Err(self.too_big(use_pos, name, def));
        }
        // Drop exhausted frames first, so tail-recursive expansions do not nest.
        while self
            .stack
            .last()
            .is_some_and(|f| f.idx >= f.text.bytes.len())
        {
            self.stack.pop();
        }
        if self.stack.len() >= self.limits.max_depth {
            let mut d = Diagnostic::error(
                Some(use_pos),
                format!(
                    "macro expansion nested more than {} levels deep while expanding `{name}`; is a macro recursive?",
                    self.limits.max_depth
                ),
            );
            if let Some(dp) = def {
                d = d.note(Some(dp), format!("`{name}` is defined here"));
            }
            return Err(Errors::one(d));
        }
        self.stack.push(Frame::new(Rc::new(t)));
        Ok(())
    }

    fn too_big(&self, use_pos: Pos, name: &str, def: Option<Pos>) -> Errors {
        let mut d = Diagnostic::error(
            Some(use_pos),
            format!(
                "macro expansion would use more than {} bytes while expanding `{name}`; is a macro recursive?",
                self.limits.max_bytes
            ),
        );
        if let Some(dp) = def {
            d = d.note(Some(dp), format!("`{name}` is defined here"));
        }
        Errors::one(d)
    }

    fn collect_args(&mut self, name: &Text) -> Result<Vec<Text>, Errors> {
        let use_pos = name.first_pos().unwrap_or_default();
        let mut args = Vec::new();
        let mut cur = Text::default();
        let mut depth = 0u32;
        let mut at_start = true;
        loop {
            if at_start {
                while let Some((c, _)) = self.peek() {
                    if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                        self.bump();
                    } else {
                        break;
                    }
                }
                at_start = false;
            }
            if self.fast_run(b"(),", Some(&mut cur)) {
                continue;
            }
            let Some(tok) = self.read_tok()? else {
                return Err(self.err(
                    use_pos,
                    format!(
                        "end of input in the argument list of `{}` (missing `)`)",
                        String::from_utf8_lossy(&name.bytes)
                    ),
                ));
            };
            match tok {
                Tok::Quoted(t) | Tok::Comment(t) => cur.extend(&t),
                Tok::Name(t) => {
                    if !self.maybe_call(&t)? {
                        cur.extend(&t);
                    }
                }
                Tok::Char(c, p) => match c {
                    b'(' => {
                        depth += 1;
                        cur.push(c, p);
                    }
                    b')' if depth > 0 => {
                        depth -= 1;
                        cur.push(c, p);
                    }
                    b')' => {
                        args.push(cur);
                        return Ok(args);
                    }
                    b',' if depth == 0 => {
                        args.push(std::mem::take(&mut cur));
                        at_start = true;
                    }
                    _ => cur.push(c, p),
                },
            }
            if cur.mem_cost() > self.limits.max_bytes {
                return Err(self.err(use_pos, "macro argument too large"));
            }
        }
    }

    fn arg_str(args: &[Text], i: usize) -> String {
        args.get(i)
            .map(|a| String::from_utf8_lossy(&a.bytes).into_owned())
            .unwrap_or_default()
    }

    fn builtin(
        &mut self,
        b: Builtin,
        name: &str,
        use_pos: Pos,
        args: Vec<Text>,
        has_args: bool,
    ) -> Result<(), Errors> {
        match b {
            Builtin::Define | Builtin::Pushdef => {
                let key = args.first().map(|a| a.bytes.clone()).unwrap_or_default();
                if key.is_empty() {
                    self.messages.push(Diagnostic::warning(
                        Some(use_pos),
                        format!("`{name}` without a macro name does nothing"),
                    ));
                    return Ok(());
                }
                let body = args.get(1).cloned().unwrap_or_default();
                let def = body.first_pos().or(Some(use_pos));
                let m = user_macro(body, def);
                let h = filter_index(&key);
                self.name_filter[h / 64] |= 1 << (h % 64);
                let e = self.macros.entry(key).or_default();
                if b == Builtin::Define {
                    e.pop();
                }
                e.push(m);
            }
            Builtin::Popdef | Builtin::Undefine => {
                for a in &args {
                    if b == Builtin::Undefine {
                        self.macros.remove(&a.bytes);
                    } else if let Some(v) = self.macros.get_mut(&a.bytes) {
                        v.pop();
                        if v.is_empty() {
                            self.macros.remove(&a.bytes);
                        }
                    }
                }
            }
            Builtin::Ifdef => {
                let key = args.first().map(|a| a.bytes.clone()).unwrap_or_default();
                let pick = if self.macros.contains_key(&key) { 1 } else { 2 };
                if let Some(t) = args.get(pick).cloned() {
                    let e = self.new_expansion(name, use_pos, None);
                    self.push_text(retag(t, e), use_pos, name, None)?;
                }
            }
            Builtin::Ifelse => {
                let mut i = 0;
                let result = loop {
                    let rest = args.len() - i.min(args.len());
                    if rest < 3 {
                        break None;
                    }
                    if args[i].bytes == args[i + 1].bytes {
                        break Some(args[i + 2].clone());
                    }
                    if rest == 4 {
                        break Some(args[i + 3].clone());
                    }
                    if rest == 3 {
                        break None;
                    }
                    i += 3;
                };
                if let Some(t) = result {
                    let e = self.new_expansion(name, use_pos, None);
                    self.push_text(retag(t, e), use_pos, name, None)?;
                }
            }
            Builtin::Dnl => {
                if has_args {
                    self.messages.push(Diagnostic::warning(
                        Some(use_pos),
                        "`dnl` takes no arguments; the argument list was discarded",
                    ));
                }
                while let Some((c, _)) = self.next() {
                    if c == b'\n' {
                        break;
                    }
                }
            }
            Builtin::Shift => {
                let mut t = Text::default();
                for (k, a) in args.iter().enumerate().skip(1) {
                    if k > 1 {
                        t.push(b',', use_pos);
                    }
                    t.push(b'`', use_pos);
                    t.extend(a);
                    t.push(b'\'', use_pos);
                }
                let e = self.new_expansion(name, use_pos, None);
                self.push_text(retag(t, e), use_pos, name, None)?;
            }
            Builtin::Divert => {
                let s = Self::arg_str(&args, 0);
                let s = s.trim();
                self.current = if s.is_empty() {
                    0
                } else {
                    s.parse::<i64>()
                        .map_err(|_| self.err(use_pos, format!("divert: `{s}` is not a number")))?
                };
            }
            Builtin::Include | Builtin::Sinclude => {
                let file = Self::arg_str(&args, 0);
                let base = self
                    .sm
                    .files
                    .get(use_pos.file as usize)
                    .map(|f| PathBuf::from(&f.name))
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or_default();
                let path = if Path::new(&file).is_absolute() {
                    PathBuf::from(&file)
                } else {
                    base.join(&file)
                };
                match self.loader.load(&path) {
                    Ok(data) => {
                        let id = self.sm.add_file(path.display().to_string(), data.clone());
                        let t = Text::from_file(data, id);
                        self.push_text(t, use_pos, name, None)?;
                    }
                    Err(e) if b == Builtin::Include => {
                        return Err(
                            self.err(use_pos, format!("cannot include {}: {e}", path.display()))
                        );
                    }
                    Err(_) => {}
                }
            }
            Builtin::Errprint => {
                let msg: Vec<String> = (0..args.len()).map(|i| Self::arg_str(&args, i)).collect();
                self.messages.push(Diagnostic::warning(
                    Some(use_pos),
                    format!("errprint: {}", msg.join(" ")),
                ));
            }
            Builtin::Incr | Builtin::Decr => {
                let s = Self::arg_str(&args, 0);
                let n: i64 = s.trim().parse().map_err(|_| {
                    self.err(use_pos, format!("{name}: `{}` is not a number", s.trim()))
                })?;
                let v = if b == Builtin::Incr {
                    n.wrapping_add(1)
                } else {
                    n.wrapping_sub(1)
                };
                let mut t = Text::default();
                t.push_str(v.to_string().as_bytes(), use_pos);
                self.push_text(t, use_pos, name, None)?;
            }
            Builtin::Len => {
                let n = args.first().map(|a| a.len()).unwrap_or(0);
                let mut t = Text::default();
                t.push_str(n.to_string().as_bytes(), use_pos);
                self.push_text(t, use_pos, name, None)?;
            }
            Builtin::File => {
                let f = self.sm.file_name(use_pos).to_string();
                let mut t = Text::default();
                t.push(b'`', use_pos);
                t.push_str(f.as_bytes(), use_pos);
                t.push(b'\'', use_pos);
                self.push_text(t, use_pos, name, None)?;
            }
            Builtin::Line => {
                let mut t = Text::default();
                t.push_str(use_pos.line.to_string().as_bytes(), use_pos);
                self.push_text(t, use_pos, name, None)?;
            }
        }
        Ok(())
    }
}

/// Marks text produced by a builtin (ifdef, ifelse, shift) as coming from expansion `e`
/// while keeping its source lines.
fn retag(mut t: Text, e: u32) -> Text {
    t.map_pos(|p| if p.exp == 0 { Pos { exp: e, ..p } } else { p });
    t
}

/// Appends argument text, marking text read straight from a file as part of expansion
/// `exp` (its positions stay those of the argument).
fn extend_tagged(out: &mut Text, a: &Text, exp: u32) {
    out.extend_range_map(
        a,
        0,
        a.len(),
        |p| if p.exp == 0 { Pos { exp, ..p } } else { p },
    );
}

/// An upper bound of the memory [`substitute`] would use for this call.
fn substituted_cost(body: &Text, tmpl: &[Piece], args: &[Text], name: &Text) -> u64 {
    let all: u64 = args.iter().map(|a| a.mem_cost() + 64).sum();
    let mut cost = body.mem_cost();
    for p in tmpl {
        cost = cost.saturating_add(match p {
            Piece::Lit { .. } | Piece::Count(_) => 32,
            Piece::Arg(k) => args.get(k - 1).map(|a| a.mem_cost() + 48).unwrap_or(0),
            Piece::Name => name.mem_cost(),
            Piece::Star | Piece::At => all,
        });
    }
    cost
}

/// Builds a user macro's expansion: the body's pieces with `$` references
/// replaced. Body text is tagged as coming from expansion `exp`.
fn substitute(
    body: &Text,
    tmpl: &[Piece],
    args: &[Text],
    name: &Text,
    exp: u32,
    use_pos: Pos,
) -> Text {
    let mut out = Text::default();
    out.bytes
        .reserve(body.len() + args.iter().map(Text::len).sum::<usize>());
    let tag = |p: Pos| Pos { exp, ..p };
    for piece in tmpl {
        match piece {
            Piece::Lit {
                start,
                end,
                seg,
                pos,
            } => out.extend_from(body, *seg, *pos, *start, *end, tag),
            Piece::Arg(k) => {
                if let Some(a) = args.get(k - 1) {
                    extend_tagged(&mut out, a, exp);
                }
            }
            Piece::Name => out.extend(name),
            Piece::Count(p) => out.push_str(args.len().to_string().as_bytes(), tag(*p)),
            Piece::Star | Piece::At => {
                let at = matches!(piece, Piece::At);
                for (k, a) in args.iter().enumerate() {
                    if k > 0 {
                        out.push(b',', use_pos);
                    }
                    if at {
                        out.push(b'`', use_pos);
                    }
                    extend_tagged(&mut out, a, exp);
                    if at {
                        out.push(b'\'', use_pos);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(src: &str) -> Result<String, String> {
        let mut sm = SourceMap::default();
        let mut l = FsLoader;
        let limits = Limits {
            max_depth: 256,
            max_expansions: 100_000,
            max_bytes: 1 << 20,
        };
        let e = Expander::new(&mut sm, &mut l, limits);
        match e.run_text("t.m4", src.as_bytes()) {
            Ok((t, _)) => Ok(String::from_utf8_lossy(&t.bytes).into_owned()),
            Err(e) => Err(e.render(&sm)),
        }
    }

    #[test]
    fn define_and_args() {
        assert_eq!(expand("define(`f', `<$1|$2>')f(a, b)").unwrap(), "<a|b>");
        assert_eq!(
            expand("define(`f', `$#:$*:`$0'')f(a,b,c)").unwrap(),
            "3:a,b,c:f"
        );
        assert_eq!(
            expand("define(`g',`[$1]')define(`f', `g($@)')f(`x,y')").unwrap(),
            "[x,y]"
        );
        assert_eq!(
            expand("define(`f', `$*')define(`x', `X')f(`x')").unwrap(),
            "X"
        );
    }

    #[test]
    fn rescanning_and_quotes() {
        assert_eq!(expand("define(`a', `b')define(`b', `c')a").unwrap(), "c");
        assert_eq!(expand("define(`a', `b')`a'").unwrap(), "a");
        assert_eq!(expand("define(`a', ``a'')a").unwrap(), "a");
        assert_eq!(expand("``nested' quotes'").unwrap(), "`nested' quotes");
    }

    #[test]
    fn conditionals() {
        assert_eq!(expand("ifdef(`x', yes, no)").unwrap(), "no");
        assert_eq!(expand("define(`x')ifdef(`x', yes, no)").unwrap(), "yes");
        assert_eq!(expand("ifelse(a, b, 1, a, a, 2, 3)").unwrap(), "2");
        assert_eq!(expand("ifelse(a, b, 1, 4)").unwrap(), "4");
        assert_eq!(expand("ifelse(a, b, 1)").unwrap(), "");
        assert_eq!(expand("ifelse(`comment')x").unwrap(), "x");
    }

    #[test]
    fn dnl_divert_shift_comments() {
        assert_eq!(expand("a dnl gone\nb").unwrap(), "a b");
        assert_eq!(expand("divert(-1)hidden divert`'shown").unwrap(), "shown");
        assert_eq!(
            expand("divert(1)later divert(0)first ").unwrap(),
            "first later "
        );
        assert_eq!(expand("shift(a, b, c)").unwrap(), "b,c");
        assert_eq!(
            expand("define(`x', y)# x stays\nx").unwrap(),
            "# x stays\ny"
        );
        assert_eq!(expand("define(`x', y)define x").unwrap(), "define y");
    }

    #[test]
    fn split_keeps_every_position() {
        let mut t = Text::from_file(b"ab\ncd\n".to_vec(), 0);
        t.push_run(
            b"xy\nz",
            Pos {
                file: 1,
                line: 7,
                col: 3,
                exp: 2,
            },
        );
        t.push(
            b'q',
            Pos {
                file: 2,
                line: 1,
                col: 1,
                exp: 0,
            },
        );
        let all: Vec<Pos> = (0..t.len()).map(|i| t.pos_at(i)).collect();
        for k in 0..=t.len() {
            let mut tail = t.clone();
            let head = tail.split_to(k);
            assert_eq!(head.len(), k);
            let got: Vec<Pos> = (0..head.len())
                .map(|i| head.pos_at(i))
                .chain((0..tail.len()).map(|i| tail.pos_at(i)))
                .collect();
            assert_eq!(got, all, "split at {k}");
            let mut joined = head.clone();
            joined.extend(&tail);
            assert_eq!(joined.bytes, t.bytes);
        }
    }

    #[test]
    fn recursion_is_bounded() {
        let e = expand("define(`a', `a a')a").unwrap_err();
        assert!(e.contains("recursive"), "{e}");
        let e =
            expand("define(`d', `$1$1$1$1$1$1$1$1')d(d(d(d(d(d(d(d(d(d(x))))))))))").unwrap_err();
        assert!(e.contains("would use more than"), "{e}");
        let e = expand("define(`a', `a(a')a").unwrap_err();
        assert!(e.contains("argument lists"), "{e}");
        let e = expand("define(`a', `a')a").unwrap_err();
        assert!(e.contains("limit") || e.contains("recursive"), "{e}");
    }

    #[test]
    fn errors_point_at_use_and_definition() {
        let e = expand("define(`f', `include(`/nonexistent/x')')\nf").unwrap_err();
        assert!(
            e.contains("t.m4:2:1: note: in expansion of macro `f`"),
            "{e}"
        );
        assert!(e.contains("t.m4:1:14: note: macro `f` defined here"), "{e}");
        let e = expand("define(`f', x)\nf(a, b").unwrap_err();
        assert!(
            e.contains("t.m4:2:1: error: end of input in the argument list of `f`"),
            "{e}"
        );
    }
}
