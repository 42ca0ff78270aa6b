//! Tokens of the SELinux policy language, as checkpolicy's scanner defines them
//! (keywords are reserved in all-lower or all-upper case; identifiers may contain
//! `-` and single `.`; `#` starts a comment).

use std::rc::Rc;

use crate::diag::{Diagnostic, Errors, Pos};
use crate::m4::{CursorState, Text};
use rustc_hash::FxHashMap as FxMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Ident(Rc<str>),
    Kw(&'static str),
    Number(u64),
    /// An unquoted path (`/a/b`) or a quoted string.
    Path(Rc<str>),
    Punct(&'static str),
    Eof,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::Kw(k) => format!("keyword `{k}`"),
            Tok::Number(n) => format!("number `{n}`"),
            Tok::Path(p) => format!("path `{p}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "end of input".to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// Every keyword of checkpolicy's scanner (so that, as there, none can name a symbol).
pub const KEYWORDS: &[&str] = &[
    "clone",
    "common",
    "class",
    "constrain",
    "validatetrans",
    "inherits",
    "sid",
    "role",
    "roles",
    "roleattribute",
    "attribute_role",
    "types",
    "typealias",
    "typeattribute",
    "typebounds",
    "type",
    "bool",
    "tunable",
    "if",
    "else",
    "alias",
    "attribute",
    "expandattribute",
    "type_transition",
    "type_member",
    "type_change",
    "role_transition",
    "range_transition",
    "sensitivity",
    "dominance",
    "category",
    "level",
    "range",
    "mlsconstrain",
    "mlsvalidatetrans",
    "user",
    "neverallow",
    "allow",
    "auditallow",
    "auditdeny",
    "dontaudit",
    "allowxperm",
    "auditallowxperm",
    "dontauditxperm",
    "neverallowxperm",
    "source",
    "target",
    "sameuser",
    "module",
    "require",
    "optional",
    "or",
    "and",
    "not",
    "xor",
    "eq",
    "true",
    "false",
    "dom",
    "domby",
    "incomp",
    "fscon",
    "portcon",
    "netifcon",
    "nodecon",
    "pirqcon",
    "iomemcon",
    "ioportcon",
    "pcidevicecon",
    "devicetreecon",
    "fs_use_xattr",
    "fs_use_task",
    "fs_use_trans",
    "genfscon",
    "r1",
    "r2",
    "r3",
    "u1",
    "u2",
    "u3",
    "t1",
    "t2",
    "t3",
    "l1",
    "l2",
    "h1",
    "h2",
    "policycap",
    "permissive",
    "default_user",
    "default_role",
    "default_type",
    "default_range",
    "low-high",
    "high",
    "low",
    "glblub",
    "ibpkeycon",
    "ibendportcon",
];

fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A streaming tokenizer over expanded policy text, which may arrive in pieces
/// (each ending after a newline, so no token spans two).
pub struct Lexer<'t> {
    src: Box<dyn FnMut() -> Option<Text> + 't>,
    t: Text,
    i: usize,
    cur: CursorState,
    /// Keywords (as written in lower or upper case) and identifiers seen before,
    /// so that each word is hashed once and each identifier allocated once.
    words: FxMap<Box<[u8]>, Tok>,
    /// Just after the last token: where the end of input is reported.
    last_end: Pos,
}

fn number(word: &str) -> Option<u64> {
    if let Some(h) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if word.bytes().all(|d| d.is_ascii_digit()) {
        if word.len() > 1 && word.starts_with('0') {
            u64::from_str_radix(&word[1..], 8).ok()
        } else {
            word.parse::<u64>().ok()
        }
    } else {
        None
    }
}

impl<'t> Lexer<'t> {
    /// A lexer over one text.
    pub fn new(t: &'t Text) -> Lexer<'t> {
        let mut once = Some(t.clone());
        Lexer::from_pieces(Box::new(move || once.take()))
    }

    /// A lexer over the pieces `src` yields until it returns `None`.
    pub fn from_pieces(src: Box<dyn FnMut() -> Option<Text> + 't>) -> Lexer<'t> {
        static UPPER: std::sync::OnceLock<Vec<(String, &'static str)>> = std::sync::OnceLock::new();
        let upper = UPPER.get_or_init(|| {
            KEYWORDS
                .iter()
                .map(|k| (k.to_ascii_uppercase(), *k))
                .collect()
        });
        let mut words: FxMap<Box<[u8]>, Tok> = FxMap::default();
        for k in KEYWORDS {
            words.insert(k.as_bytes().into(), Tok::Kw(k));
        }
        for (u, k) in upper {
            words.insert(u.as_bytes().into(), Tok::Kw(k));
        }
        Lexer {
            src,
            t: Text::default(),
            i: 0,
            cur: CursorState::default(),
            words,
            last_end: Pos::default(),
        }
    }

    /// The next token; `Tok::Eof` (repeatedly) at the end.
    pub fn next_token(&mut self) -> Result<Token, Diagnostic> {
        let r = self.next_inner();
        if let Ok(t) = &r
            && t.tok != Tok::Eof
        {
            let len = match &t.tok {
                Tok::Ident(s) | Tok::Path(s) => s.len(),
                Tok::Kw(k) | Tok::Punct(k) => k.len(),
                Tok::Number(_) => 1,
                Tok::Eof => 0,
            };
            self.last_end = Pos {
                col: t.pos.col.saturating_add(len as u32),
                ..t.pos
            };
        }
        r
    }

    fn next_inner(&mut self) -> Result<Token, Diagnostic> {
        loop {
            if self.i >= self.t.bytes.len() {
                match (self.src)() {
                    Some(t) => {
                        self.cur = CursorState::new(&t);
                        self.t = t;
                        self.i = 0;
                        continue;
                    }
                    None => {
                        return Ok(Token {
                            tok: Tok::Eof,
                            pos: self.last_end,
                        });
                    }
                }
            }
            let b: &[u8] = &self.t.bytes;
            let i = self.i;
            let c = b[i];
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                    self.i += 1;
                    continue;
                }
                b'#' => {
                    self.i = b[i..]
                        .iter()
                        .position(|&x| x == b'\n')
                        .map(|k| i + k)
                        .unwrap_or(b.len());
                    continue;
                }
                _ => {}
            }
            let pos = self.cur.pos(&self.t, i);
            if c.is_ascii_alphabetic() {
                let mut j = i + 1;
                loop {
                    if j < b.len() && is_id_char(b[j]) {
                        j += 1;
                    } else if j + 1 < b.len() && b[j] == b'.' && is_id_char(b[j + 1]) {
                        j += 2;
                    } else {
                        break;
                    }
                }
                self.i = j;
                let word = &b[i..j];
                let tok = match self.words.get(word) {
                    Some(t) => t.clone(),
                    None => {
                        let t = Tok::Ident(Rc::from(String::from_utf8_lossy(word).as_ref()));
                        self.words.insert(word.into(), t.clone());
                        t
                    }
                };
                return Ok(Token { tok, pos });
            }
            if c.is_ascii_digit() {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                self.i = j;
                let word = std::str::from_utf8(&b[i..j]).unwrap_or("");
                return match number(word) {
                    Some(n) => Ok(Token {
                        tok: Tok::Number(n),
                        pos,
                    }),
                    None => Err(Diagnostic::error(
                        Some(pos),
                        format!(
                            "invalid number `{word}` (expected decimal, octal or 0x hexadecimal, at most 64 bits)"
                        ),
                    )),
                };
            }
            if c == b'"' {
                let s = i + 1;
                let mut j = s;
                while j < b.len() && b[j] != b'"' && b[j] != b'\n' {
                    j += 1;
                }
                if j >= b.len() || b[j] != b'"' {
                    self.i = j;
                    return Err(Diagnostic::error(Some(pos), "unterminated string"));
                }
                self.i = j + 1;
                return Ok(Token {
                    tok: Tok::Path(Rc::from(String::from_utf8_lossy(&b[s..j]).as_ref())),
                    pos,
                });
            }
            if c == b'/' {
                // checkpolicy's PATH: `/` and every following byte up to a
                // blank (space, tab, CR, LF, FF) — device-tree node names
                // have `@`, `,`, `:` and more.
                let mut j = i + 1;
                while j < b.len() && !matches!(b[j], b' ' | b'\t' | b'\r' | b'\n' | 0x0c) {
                    j += 1;
                }
                self.i = j;
                return Ok(Token {
                    tok: Tok::Path(Rc::from(String::from_utf8_lossy(&b[i..j]).as_ref())),
                    pos,
                });
            }
            let two = if i + 1 < b.len() {
                &b[i..i + 2]
            } else {
                &b[i..i + 1]
            };
            let p2: Option<&'static str> = match two {
                b"==" => Some("=="),
                b"!=" => Some("!="),
                b"&&" => Some("&&"),
                b"||" => Some("||"),
                _ => None,
            };
            if let Some(p) = p2 {
                self.i += 2;
                return Ok(Token {
                    tok: Tok::Punct(p),
                    pos,
                });
            }
            self.i += 1;
            let p1: Option<&'static str> = match c {
                b',' => Some(","),
                b':' => Some(":"),
                b';' => Some(";"),
                b'(' => Some("("),
                b')' => Some(")"),
                b'{' => Some("{"),
                b'}' => Some("}"),
                b'[' => Some("["),
                b']' => Some("]"),
                b'-' => Some("-"),
                b'.' => Some("."),
                b'~' => Some("~"),
                b'*' => Some("*"),
                b'!' => Some("!"),
                b'^' => Some("^"),
                _ => None,
            };
            return match p1 {
                Some(p) => Ok(Token {
                    tok: Tok::Punct(p),
                    pos,
                }),
                None => Err(Diagnostic::error(
                    Some(pos),
                    format!("unexpected character `{}`", (c as char).escape_default()),
                )),
            };
        }
    }
}

/// Splits expanded policy text into tokens (all at once; the parser streams instead).
pub fn lex(t: &Text) -> Result<Vec<Token>, Errors> {
    let mut l = Lexer::new(t);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    loop {
        match l.next_token() {
            Ok(tok) => {
                let eof = tok.tok == Tok::Eof;
                out.push(tok);
                if eof {
                    break;
                }
            }
            Err(d) => {
                errors.push(d);
                if errors.len() >= 20 {
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Errors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let t = Text::from_file(s.as_bytes().to_vec(), 0);
        lex(&t).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn identifiers_keywords_numbers() {
        assert_eq!(
            toks("allow ALLOW Allow c0.c255 s0-s15 t1 0x3f8-0x3ff 010"),
            vec![
                Tok::Kw("allow"),
                Tok::Kw("allow"),
                Tok::Ident("Allow".into()),
                Tok::Ident("c0.c255".into()),
                Tok::Ident("s0-s15".into()),
                Tok::Kw("t1"),
                Tok::Number(0x3f8),
                Tok::Punct("-"),
                Tok::Number(0x3ff),
                Tok::Number(8),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn comments_paths_and_punctuation() {
        assert_eq!(
            toks("# c\n\"/a/b\" /x/y /soc/serial@1c28000,a:b\t{-a}==!"),
            vec![
                Tok::Path("/a/b".into()),
                Tok::Path("/x/y".into()),
                Tok::Path("/soc/serial@1c28000,a:b".into()),
                Tok::Punct("{"),
                Tok::Punct("-"),
                Tok::Ident("a".into()),
                Tok::Punct("}"),
                Tok::Punct("=="),
                Tok::Punct("!"),
                Tok::Eof
            ]
        );
        let t = Text::from_file(b"allow $x".to_vec(), 0);
        assert!(lex(&t).is_err());
    }
}
