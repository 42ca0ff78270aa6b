//! Tokens of the SELinux policy language, as checkpolicy's scanner defines them
//! (keywords are reserved in all-lower or all-upper case; identifiers may contain
//! `-` and single `.`; `#` starts a comment).

use std::rc::Rc;

use crate::diag::{Diagnostic, Errors, Pos};
use crate::fxhash::FxMap;
use crate::m4::{Cursor, Text};

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

/// A streaming tokenizer over expanded policy text.
pub struct Lexer<'t> {
    t: &'t Text,
    i: usize,
    cur: Cursor<'t>,
    /// Keywords (as written in lower or upper case) and identifiers seen before,
    /// so that each word is hashed once and each identifier allocated once.
    words: FxMap<&'t [u8], Tok>,
    done: bool,
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
    pub fn new(t: &'t Text) -> Lexer<'t> {
        static UPPER: std::sync::OnceLock<Vec<(String, &'static str)>> = std::sync::OnceLock::new();
        let upper = UPPER.get_or_init(|| {
            KEYWORDS
                .iter()
                .map(|k| (k.to_ascii_uppercase(), *k))
                .collect()
        });
        let mut words: FxMap<&'t [u8], Tok> = FxMap::default();
        for k in KEYWORDS {
            words.insert(k.as_bytes(), Tok::Kw(k));
        }
        for (u, k) in upper {
            words.insert(u.as_bytes(), Tok::Kw(k));
        }
        Lexer {
            t,
            i: 0,
            cur: t.cursor(),
            words,
            done: false,
        }
    }

    /// End of input is reported just after the last byte that is not white space.
    fn end_pos(&self) -> Pos {
        match self.t.bytes.iter().rposition(|c| !c.is_ascii_whitespace()) {
            Some(i) => {
                let p = self.t.pos_at(i);
                Pos {
                    col: p.col + 1,
                    ..p
                }
            }
            None => self.t.end_pos(),
        }
    }

    /// The next token; `Tok::Eof` (repeatedly) at the end.
    pub fn next_token(&mut self) -> Result<Token, Diagnostic> {
        let b: &'t [u8] = &self.t.bytes;
        loop {
            if self.i >= b.len() {
                if !self.done {
                    self.done = true;
                }
                return Ok(Token {
                    tok: Tok::Eof,
                    pos: self.end_pos(),
                });
            }
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
            let pos = self.cur.pos(i);
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
                let tok = self
                    .words
                    .entry(word)
                    .or_insert_with(|| Tok::Ident(Rc::from(String::from_utf8_lossy(word).as_ref())))
                    .clone();
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
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b"_.-/".contains(&b[j])) {
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
            toks("# c\n\"/a/b\" /x/y {-a}==!"),
            vec![
                Tok::Path("/a/b".into()),
                Tok::Path("/x/y".into()),
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
