//! Source positions and compiler-style diagnostics (`file:line:col: error: ...`,
//! the source line, a caret, and the macro expansion chain).

use std::fmt::Write as _;

/// A position in the expanded policy text.
///
/// `file` indexes [`SourceMap::files`]; `exp` is 0 for text read straight from a
/// file, otherwise 1 + the index of the macro expansion the text came out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub file: u32,
    pub line: u32,
    pub col: u32,
    pub exp: u32,
}

/// One macro expansion: which macro, where it was used, where its body was defined.
#[derive(Clone, Debug)]
pub struct Expansion {
    pub name: String,
    pub use_pos: Pos,
    pub def_pos: Option<Pos>,
}

/// A source file (or the command line, for `-D`).
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: Vec<u8>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: String, text: Vec<u8>) -> SourceFile {
        let mut line_starts = vec![0];
        for (i, b) in text.iter().enumerate() {
            if *b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        SourceFile {
            name,
            text,
            line_starts,
        }
    }

    /// The text of line `line` (1-based), without its newline.
    pub fn line_text(&self, line: u32) -> Option<String> {
        let i = usize::try_from(line).ok()?.checked_sub(1)?;
        let start = *self.line_starts.get(i)?;
        let end = self
            .line_starts
            .get(i + 1)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        Some(String::from_utf8_lossy(&self.text[start..end.max(start)]).into_owned())
    }
}

/// All files read and all macro expansions made during one compilation.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    pub files: Vec<SourceFile>,
    pub expansions: Vec<Expansion>,
}

impl SourceMap {
    pub fn add_file(&mut self, name: String, text: Vec<u8>) -> u32 {
        self.files.push(SourceFile::new(name, text));
        u32::try_from(self.files.len() - 1).unwrap_or(u32::MAX)
    }

    pub fn file_name(&self, pos: Pos) -> &str {
        self.files
            .get(pos.file as usize)
            .map(|f| f.name.as_str())
            .unwrap_or("<unknown>")
    }

    /// `file:line:col`
    pub fn loc(&self, pos: Pos) -> String {
        format!("{}:{}:{}", self.file_name(pos), pos.line, pos.col)
    }

    /// `file:line`
    pub fn loc_line(&self, pos: Pos) -> String {
        format!("{}:{}", self.file_name(pos), pos.line)
    }

    fn excerpt(&self, pos: Pos, out: &mut String) {
        let Some(f) = self.files.get(pos.file as usize) else {
            return;
        };
        let Some(text) = f.line_text(pos.line) else {
            return;
        };
        let text = text.replace('\t', " ");
        let _ = writeln!(out, "  {text}");
        let col = (pos.col as usize).saturating_sub(1).min(text.len());
        let _ = writeln!(out, "  {}^", " ".repeat(col));
    }

    /// The chain of macro expansions that produced `pos`, innermost first.
    pub fn expansion_chain(&self, pos: Pos) -> Vec<&Expansion> {
        let mut chain = Vec::new();
        let mut exp = pos.exp;
        while exp != 0 && chain.len() < 64 {
            let Some(e) = self.expansions.get(exp as usize - 1) else {
                break;
            };
            chain.push(e);
            exp = e.use_pos.exp;
        }
        chain
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One message, with an optional primary position and notes.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Option<Pos>,
    pub msg: String,
    pub notes: Vec<(Option<Pos>, String)>,
}

impl Diagnostic {
    pub fn error(pos: Option<Pos>, msg: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            pos,
            msg: msg.into(),
            notes: Vec::new(),
        }
    }

    pub fn warning(pos: Option<Pos>, msg: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            pos,
            msg: msg.into(),
            notes: Vec::new(),
        }
    }

    pub fn note(mut self, pos: Option<Pos>, msg: impl Into<String>) -> Diagnostic {
        self.notes.push((pos, msg.into()));
        self
    }

    fn one(sm: &SourceMap, out: &mut String, kind: &str, pos: Option<Pos>, msg: &str) {
        match pos {
            Some(p) => {
                let _ = writeln!(out, "{}: {kind}: {msg}", sm.loc(p));
                sm.excerpt(p, out);
                for e in sm.expansion_chain(p) {
                    let _ = writeln!(
                        out,
                        "{}: note: in expansion of macro `{}`",
                        sm.loc(e.use_pos),
                        e.name
                    );
                    sm.excerpt(e.use_pos, out);
                    if let Some(d) = e.def_pos {
                        let _ =
                            writeln!(out, "{}: note: macro `{}` defined here", sm.loc(d), e.name);
                        sm.excerpt(d, out);
                    }
                }
            }
            None => {
                let _ = writeln!(out, "policy-compiler: {kind}: {msg}");
            }
        }
    }

    /// Renders the diagnostic as a good compiler would.
    pub fn render(&self, sm: &SourceMap) -> String {
        let mut out = String::new();
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        Self::one(sm, &mut out, kind, self.pos, &self.msg);
        for (p, n) in &self.notes {
            Self::one(sm, &mut out, "note", *p, n);
        }
        out
    }
}

/// The error type of a failed compilation: every diagnostic found (at least one error).
#[derive(Debug)]
pub struct Errors(pub Vec<Diagnostic>);

impl Errors {
    pub fn one(d: Diagnostic) -> Errors {
        Errors(vec![d])
    }

    pub fn render(&self, sm: &SourceMap) -> String {
        self.0.iter().map(|d| d.render(sm)).collect()
    }
}
