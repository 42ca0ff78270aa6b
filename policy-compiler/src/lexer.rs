//! Tokens of the SELinux policy language, as checkpolicy's scanner defines them
//! (keywords are reserved in all-lower or all-upper case; identifiers may contain
//! `-` and single `.`; `#` starts a comment).

use std::rc::Rc;

use crate::diag::{Diagnostic, Errors, Pos};
use crate::fxhash::FxMap;
use crate::m4::Text;

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

/// Splits expanded policy text into tokens.
pub fn lex(t: &Text) -> Result<Vec<Token>, Errors> {
    let b = &t.bytes;
    let mut out = Vec::with_capacity(b.len() / 8);
    let mut errors = Vec::new();
    let mut i = 0;
    let mut cur = t.cursor();
    // One table for keywords (as written in lower or upper case) and identifiers
    // seen before, so that each word is hashed once.
    let upper: Vec<(String, &'static str)> = KEYWORDS
        .iter()
        .map(|k| (k.to_ascii_uppercase(), *k))
        .collect();
    let mut words: FxMap<&[u8], Tok> = FxMap::default();
    for k in KEYWORDS {
        words.insert(k.as_bytes(), Tok::Kw(k));
    }
    for (u, k) in &upper {
        words.insert(u.as_bytes(), Tok::Kw(k));
    }
    while i < b.len() {
        let c = b[i];
        let pos = cur.pos(i);
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() => {
                let s = i;
                i += 1;
                loop {
                    if i < b.len() && is_id_char(b[i]) {
                        i += 1;
                    } else if i + 1 < b.len() && b[i] == b'.' && is_id_char(b[i + 1]) {
                        i += 2;
                    } else {
                        break;
                    }
                }
                let word = &b[s..i];
                let tok = words
                    .entry(word)
                    .or_insert_with(|| Tok::Ident(Rc::from(String::from_utf8_lossy(word).as_ref())))
                    .clone();
                out.push(Token { tok, pos });
            }
            c if c.is_ascii_digit() => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = std::str::from_utf8(&b[s..i]).unwrap_or("");
                let n = if let Some(h) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X"))
                {
                    u64::from_str_radix(h, 16).ok()
                } else if word.bytes().all(|d| d.is_ascii_digit()) {
                    if word.len() > 1 && word.starts_with('0') {
                        u64::from_str_radix(&word[1..], 8).ok()
                    } else {
                        word.parse::<u64>().ok()
                    }
                } else {
                    None
                };
                match n {
                    Some(n) => out.push(Token {
                        tok: Tok::Number(n),
                        pos,
                    }),
                    None => errors.push(Diagnostic::error(
                        Some(pos),
                        format!("invalid number `{word}` (expected decimal, octal or 0x hexadecimal, at most 64 bits)"),
                    )),
                }
            }
            b'"' => {
                let s = i + 1;
                let mut j = s;
                while j < b.len() && b[j] != b'"' && b[j] != b'\n' {
                    j += 1;
                }
                if j >= b.len() || b[j] != b'"' {
                    errors.push(Diagnostic::error(Some(pos), "unterminated string"));
                    i = j;
                } else {
                    out.push(Token {
                        tok: Tok::Path(Rc::from(String::from_utf8_lossy(&b[s..j]).as_ref())),
                        pos,
                    });
                    i = j + 1;
                }
            }
            b'/' => {
                let s = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_.-/".contains(&b[i])) {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Path(Rc::from(String::from_utf8_lossy(&b[s..i]).as_ref())),
                    pos,
                });
            }
            _ => {
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
                    out.push(Token {
                        tok: Tok::Punct(p),
                        pos,
                    });
                    i += 2;
                    continue;
                }
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
                match p1 {
                    Some(p) => out.push(Token {
                        tok: Tok::Punct(p),
                        pos,
                    }),
                    None => errors.push(Diagnostic::error(
                        Some(pos),
                        format!("unexpected character `{}`", (c as char).escape_default()),
                    )),
                }
                i += 1;
            }
        }
        if errors.len() >= 20 {
            break;
        }
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    // End of input is reported just after the last byte that is not white space.
    let end_pos = match b.iter().rposition(|c| !c.is_ascii_whitespace()) {
        Some(i) => {
            let p = t.pos_at(i);
            Pos {
                col: p.col + 1,
                ..p
            }
        }
        None => t.end_pos(),
    };
    out.push(Token {
        tok: Tok::Eof,
        pos: end_pos,
    });
    Ok(out)
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
