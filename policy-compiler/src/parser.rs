//! Recursive-descent parser for base policies in checkpolicy's grammar and section
//! order: classes, initial SIDs, access vectors, [MLS], TE/RBAC, users,
//! constraints, initial SID contexts, Xen device contexts.

use crate::ast::*;
use crate::diag::{Diagnostic, Errors, Pos};
use crate::lexer::{Lexer, Tok, Token};
use crate::m4::Text;
use std::collections::VecDeque;

pub struct Parser<'t> {
    lex: Lexer<'t>,
    /// Tokens read ahead (never empty after `fill`).
    ahead: VecDeque<Token>,
    /// The first lexical error; reported when the parser reaches it.
    lex_error: Option<Diagnostic>,
    prev_pos: Pos,
    depth: usize,
}

/// Deepest nesting of sets, parentheses and `not` the parser accepts.
pub const MAX_NESTING: usize = 256;

type PResult<T> = Result<T, Diagnostic>;

const CEXPR_USER: u32 = 1;
const CEXPR_ROLE: u32 = 2;
const CEXPR_TYPE: u32 = 4;
const CEXPR_TARGET: u32 = 8;
const CEXPR_XTARGET: u32 = 16;
const CEXPR_L1L2: u32 = 32;
const CEXPR_L1H2: u32 = 64;
const CEXPR_H1L2: u32 = 128;
const CEXPR_H1H2: u32 = 256;
const CEXPR_L1H1: u32 = 512;
const CEXPR_L2H2: u32 = 1024;
const CEXPR_EQ: u32 = 1;
const CEXPR_NEQ: u32 = 2;
const CEXPR_DOM: u32 = 3;
const CEXPR_DOMBY: u32 = 4;
const CEXPR_INCOMP: u32 = 5;

const SECTION_ORDER: &str = "policy sections must come in this order: classes, initial SIDs, \
access vectors, MLS declarations (with -M), type/role statements, users, constraints, \
initial SID contexts, device contexts";

/// Parses expanded policy text into a [`Policy`], tokenizing as it goes.
pub fn parse(text: &Text) -> Result<Policy, Errors> {
    parse_lexer(Lexer::new(text))
}

/// Parses the tokens of `lex` (which may be reading text still being expanded).
pub fn parse_lexer(lex: Lexer<'_>) -> Result<Policy, Errors> {
    let mut p = Parser {
        lex,
        ahead: VecDeque::new(),
        lex_error: None,
        prev_pos: Pos::default(),
        depth: 0,
    };
    let r = p.policy();
    match (r, p.lex_error.take()) {
        (_, Some(e)) => Err(Errors::one(e)),
        (Ok(pol), None) => Ok(pol),
        (Err(d), None) => Err(Errors::one(d)),
    }
}

impl<'t> Parser<'t> {
    /// Makes at least `n` tokens available ahead. A lexical error ends the input
    /// (it is reported instead of whatever the parser makes of the end).
    fn fill(&mut self, n: usize) {
        while self.ahead.len() < n {
            if self.lex_error.is_some() {
                let pos = self.ahead.back().map(|t| t.pos).unwrap_or(self.prev_pos);
                self.ahead.push_back(Token { tok: Tok::Eof, pos });
                continue;
            }
            match self.lex.next_token() {
                Ok(t) => self.ahead.push_back(t),
                Err(d) => self.lex_error = Some(d),
            }
        }
    }

    fn peek_n(&mut self, n: usize) -> &Tok {
        self.fill(n + 1);
        &self.ahead[n].tok
    }

    fn peek(&mut self) -> &Tok {
        self.peek_n(0)
    }

    fn peek2(&mut self) -> &Tok {
        self.peek_n(1)
    }

    fn pos(&mut self) -> Pos {
        self.fill(1);
        self.ahead[0].pos
    }

    fn bump(&mut self) -> Token {
        self.fill(1);
        let t = if self.ahead[0].tok == Tok::Eof {
            self.ahead[0].clone()
        } else {
            self.ahead.pop_front().unwrap_or(Token {
                tok: Tok::Eof,
                pos: self.prev_pos,
            })
        };
        self.prev_pos = t.pos;
        t
    }

    fn is_kw(&mut self, k: &str) -> bool {
        matches!(self.peek(), Tok::Kw(x) if *x == k)
    }

    fn is_p(&mut self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(x) if *x == p)
    }

    fn eat_p(&mut self, p: &str) -> bool {
        if self.is_p(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, k: &str) -> bool {
        if self.is_kw(k) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn unexpected(&mut self, what: &str) -> Diagnostic {
        let t = self.peek().clone();
        let mut d = Diagnostic::error(
            Some(self.pos()),
            format!("expected {what}, found {}", t.describe()),
        );
        if let Tok::Kw(k) = t
            && what.contains("identifier")
        {
            d = d.note(
                None,
                format!(
                    "`{k}` is a reserved keyword of the policy language and cannot name a symbol"
                ),
            );
        }
        d
    }

    fn expect_p(&mut self, p: &str) -> PResult<Pos> {
        if self.is_p(p) {
            Ok(self.bump().pos)
        } else {
            Err(self.unexpected(&format!("`{p}`")))
        }
    }

    fn expect_kw(&mut self, k: &str) -> PResult<Pos> {
        if self.is_kw(k) {
            Ok(self.bump().pos)
        } else {
            Err(self.unexpected(&format!("`{k}`")))
        }
    }

    fn ident(&mut self) -> PResult<Ident> {
        match self.peek().clone() {
            Tok::Ident(name) => {
                let pos = self.bump().pos;
                Ok(Ident { name, pos })
            }
            _ => Err(self.unexpected("an identifier")),
        }
    }

    fn number(&mut self) -> PResult<(u64, Pos)> {
        match self.peek().clone() {
            Tok::Number(n) => {
                let pos = self.bump().pos;
                Ok((n, pos))
            }
            _ => Err(self.unexpected("a number")),
        }
    }

    fn semi(&mut self) -> PResult<()> {
        self.expect_p(";").map(|_| ())
    }

    fn id_comma_list(&mut self) -> PResult<Vec<Ident>> {
        let mut v = vec![self.ident()?];
        while self.eat_p(",") {
            v.push(self.ident()?);
        }
        Ok(v)
    }

    /// `names` of checkpolicy's grammar.
    fn names(&mut self) -> PResult<Names> {
        let pos = self.pos();
        let mut n = Names {
            items: Items::default(),
            star: false,
            comp: false,
            pos,
        };
        if self.eat_p("*") {
            n.star = true;
            return Ok(n);
        }
        if self.eat_p("~") {
            n.comp = true;
            if self.is_p("{") {
                self.nested(&mut n)?;
            } else {
                n.items.push((false, self.ident()?));
            }
            return Ok(n);
        }
        if self.is_p("{") {
            self.nested(&mut n)?;
            return Ok(n);
        }
        let first = self.ident()?;
        n.items.push((false, first));
        if self.is_p("-") && matches!(self.peek2(), Tok::Ident(_)) {
            self.bump();
            n.items.push((true, self.ident()?));
        }
        Ok(n)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(Diagnostic::error(
                Some(self.pos()),
                format!("nesting deeper than {MAX_NESTING} levels"),
            ));
        }
        Ok(())
    }

    fn nested(&mut self, n: &mut Names) -> PResult<()> {
        self.enter()?;
        let r = self.nested_inner(n);
        self.depth -= 1;
        r
    }

    fn nested_inner(&mut self, n: &mut Names) -> PResult<()> {
        self.expect_p("{")?;
        let mut any = false;
        loop {
            if self.eat_p("}") {
                if !any {
                    return Err(Diagnostic::error(Some(n.pos), "empty set `{ }`"));
                }
                return Ok(());
            }
            if self.is_p("{") {
                self.nested(n)?;
            } else if self.eat_p("-") {
                n.items.push((true, self.ident()?));
            } else if matches!(self.peek(), Tok::Ident(_)) {
                n.items.push((false, self.ident()?));
            } else {
                return Err(self.unexpected("an identifier, `-`, `{` or `}` in a set"));
            }
            any = true;
        }
    }

    /// `identifier_list` inside braces (class/common permission lists).
    fn brace_ident_list(&mut self) -> PResult<Vec<Ident>> {
        self.expect_p("{")?;
        let mut v = Vec::new();
        while !self.is_p("}") {
            v.push(self.ident()?);
        }
        self.bump();
        if v.is_empty() {
            return Err(Diagnostic::error(Some(self.pos()), "empty permission list"));
        }
        Ok(v)
    }

    fn policy(&mut self) -> PResult<Policy> {
        let mut p = Policy::default();
        if self.is_kw("module") {
            return Err(Diagnostic::error(
                Some(self.pos()),
                "policy modules (`module`) are not supported: the Xen target takes a single base policy",
            ));
        }
        // classes
        while self.is_kw("class") && matches!(self.peek2(), Tok::Ident(_)) {
            // `class NAME` without a `{`/inherits is a declaration
            if matches!(self.peek_n(2), Tok::Punct("{") | Tok::Kw("inherits")) {
                break;
            }
            self.bump();
            let name = self.ident()?;
            p.classes.push(name);
        }
        if p.classes.is_empty() {
            return Err(
                self.unexpected("a `class NAME` declaration (the policy starts with its classes)")
            );
        }
        while self.eat_kw("sid") {
            p.sids.push(self.ident()?);
        }
        if p.sids.is_empty() {
            return Err(
                self.unexpected("a `sid NAME` declaration (initial SIDs follow the classes)")
            );
        }
        while self.eat_kw("common") {
            let name = self.ident()?;
            let perms = self.brace_ident_list()?;
            p.commons.push((name, perms));
        }
        while self.eat_kw("class") {
            let name = self.ident()?;
            let inherits = if self.eat_kw("inherits") {
                Some(self.ident()?)
            } else {
                None
            };
            let perms = if inherits.is_none() || self.is_p("{") {
                self.brace_ident_list()?
            } else {
                Vec::new()
            };
            p.av_classes.push((name, inherits, perms));
        }
        if p.av_classes.is_empty() {
            return Err(self.unexpected(
                "a `class NAME { perms }` definition (access vectors follow the initial SIDs)",
            ));
        }
        for k in [
            "default_user",
            "default_role",
            "default_type",
            "default_range",
        ] {
            if self.is_kw(k) {
                return Err(Diagnostic::error(
                    Some(self.pos()),
                    format!("`{k}` rules are not supported by policy-compiler"),
                ));
            }
        }
        if self.is_kw("sensitivity") {
            p.mls = Some(self.mls(&mut p.constraints)?);
        }
        // TE / RBAC
        loop {
            if self.is_kw("user") {
                break;
            }
            match self.te_stmt(false)? {
                Some(s) => p.te.push(s),
                None => {
                    if self.eat_p(";") {
                        continue;
                    }
                    break;
                }
            }
        }
        if p.te.is_empty() {
            return Err(self.unexpected("a type or role statement"));
        }
        while self.is_kw("user") {
            let upos = self.bump().pos;
            let name = self.ident()?;
            self.expect_kw("roles")?;
            let roles = self.names()?;
            let (mut level, mut range) = (None, None);
            if self.eat_kw("level") {
                level = Some(self.level()?);
                self.expect_kw("range")?;
                range = Some(self.range()?);
            }
            self.semi()?;
            let _ = upos;
            p.users.push(UserDef {
                name,
                roles,
                level,
                range,
            });
        }
        if p.users.is_empty() {
            return Err(self.section_error("a `user` declaration"));
        }
        while self.is_kw("constrain") || self.is_kw("validatetrans") {
            let vt = self.is_kw("validatetrans");
            let pos = self.bump().pos;
            p.constraints.push(self.constraint(false, vt, pos)?);
        }
        while self.is_kw("sid") {
            self.bump();
            let name = self.ident()?;
            let ctx = self.context()?;
            p.sid_contexts.push((name, ctx));
        }
        if p.sid_contexts.is_empty() {
            return Err(self.section_error("a `sid NAME CONTEXT` statement"));
        }
        loop {
            let pos = self.pos();
            let kind = match self.peek() {
                Tok::Kw("pirqcon") => {
                    self.bump();
                    OconKind::Pirq(self.number()?.0)
                }
                Tok::Kw("pcidevicecon") => {
                    self.bump();
                    OconKind::Pci(self.number()?.0)
                }
                Tok::Kw(k @ ("iomemcon" | "ioportcon")) => {
                    let io = *k == "ioportcon";
                    self.bump();
                    let lo = self.number()?.0;
                    let hi = if self.eat_p("-") { self.number()?.0 } else { lo };
                    if io {
                        OconKind::Ioport(lo, hi)
                    } else {
                        OconKind::Iomem(lo, hi)
                    }
                }
                Tok::Kw("devicetreecon") => {
                    self.bump();
                    match self.peek().clone() {
                        Tok::Path(s) => {
                            self.bump();
                            OconKind::Dtree(s.to_string())
                        }
                        _ => return Err(self.unexpected("a device tree path")),
                    }
                }
                Tok::Kw(k @ ("fscon" | "portcon" | "netifcon" | "nodecon" | "fs_use_xattr" | "fs_use_task"
                | "fs_use_trans" | "genfscon" | "ibpkeycon" | "ibendportcon")) => {
                    return Err(Diagnostic::error(
                        Some(pos),
                        format!("`{k}` is a SELinux (Linux) statement; the Xen target has pirqcon, ioportcon, iomemcon, pcidevicecon and devicetreecon"),
                    ));
                }
                Tok::Eof => break,
                _ => return Err(self.section_error("a device context (pirqcon, ioportcon, iomemcon, pcidevicecon, devicetreecon) or the end of the policy")),
            };
            let ctx = self.context()?;
            p.ocons.push(Ocon { kind, ctx, pos });
        }
        Ok(p)
    }

    fn section_error(&mut self, what: &str) -> Diagnostic {
        let mut d = self.unexpected(what);
        let misplaced = match self.peek() {
            Tok::Kw(k) => matches!(
                *k,
                "class"
                    | "common"
                    | "sid"
                    | "type"
                    | "attribute"
                    | "allow"
                    | "role"
                    | "user"
                    | "constrain"
                    | "validatetrans"
                    | "typeattribute"
                    | "bool"
                    | "if"
                    | "type_transition"
                    | "neverallow"
                    | "dontaudit"
                    | "auditallow"
                    | "sensitivity"
                    | "category"
                    | "level"
                    | "mlsconstrain"
                    | "pirqcon"
                    | "iomemcon"
                    | "ioportcon"
                    | "pcidevicecon"
                    | "devicetreecon"
            ),
            _ => false,
        };
        if misplaced {
            d = d.note(None, SECTION_ORDER);
        }
        d
    }

    fn mls(&mut self, cons: &mut Vec<Constraint>) -> PResult<Mls> {
        let mut m = Mls::default();
        while self.eat_kw("sensitivity") {
            let name = self.ident()?;
            let aliases = if self.eat_kw("alias") {
                self.names()?.items.into_iter().map(|x| x.1).collect()
            } else {
                Vec::new()
            };
            self.semi()?;
            m.sens.push((name, aliases));
        }
        self.expect_kw("dominance")?;
        if self.eat_p("{") {
            while !self.is_p("}") {
                m.dominance.push(self.ident()?);
            }
            self.bump();
        } else {
            m.dominance.push(self.ident()?);
        }
        while self.eat_kw("category") {
            let name = self.ident()?;
            let aliases = if self.eat_kw("alias") {
                self.names()?.items.into_iter().map(|x| x.1).collect()
            } else {
                Vec::new()
            };
            self.semi()?;
            m.cats.push((name, aliases));
        }
        if !self.is_kw("level") {
            return Err(self.unexpected("a `level` statement"));
        }
        while self.eat_kw("level") {
            let s = self.ident()?;
            let cats = if self.eat_p(":") {
                self.id_comma_list()?
            } else {
                Vec::new()
            };
            self.semi()?;
            m.levels.push((s, cats));
        }
        while self.is_kw("mlsconstrain") || self.is_kw("mlsvalidatetrans") {
            let vt = self.is_kw("mlsvalidatetrans");
            let pos = self.bump().pos;
            cons.push(self.constraint(true, vt, pos)?);
        }
        Ok(m)
    }

    fn level(&mut self) -> PResult<Level> {
        let sens = self.ident()?;
        let cats = if self.eat_p(":") {
            self.id_comma_list()?
        } else {
            Vec::new()
        };
        Ok(Level { sens, cats })
    }

    fn range(&mut self) -> PResult<Range> {
        let low = self.level()?;
        let high = if self.eat_p("-") {
            Some(self.level()?)
        } else {
            None
        };
        Ok(Range { low, high })
    }

    fn context(&mut self) -> PResult<Context> {
        let pos = self.pos();
        let user = self.ident()?;
        self.expect_p(":")?;
        let role = self.ident()?;
        self.expect_p(":")?;
        let ty = self.ident()?;
        let range = if self.eat_p(":") {
            Some(self.range()?)
        } else {
            None
        };
        Ok(Context {
            user,
            role,
            ty,
            range,
            pos,
        })
    }

    fn cond_expr(&mut self) -> PResult<CondExpr> {
        self.enter()?;
        let r = self.cond_or();
        self.depth -= 1;
        r
    }

    fn cond_or(&mut self) -> PResult<CondExpr> {
        let mut l = self.cond_xor()?;
        while self.is_p("||") || self.is_kw("or") {
            self.bump();
            let r = self.cond_xor()?;
            l = CondExpr::Bin(3, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn cond_xor(&mut self) -> PResult<CondExpr> {
        let mut l = self.cond_and()?;
        while self.is_p("^") || self.is_kw("xor") {
            self.bump();
            let r = self.cond_and()?;
            l = CondExpr::Bin(5, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn cond_and(&mut self) -> PResult<CondExpr> {
        let mut l = self.cond_not()?;
        while self.is_p("&&") || self.is_kw("and") {
            self.bump();
            let r = self.cond_not()?;
            l = CondExpr::Bin(4, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn cond_not(&mut self) -> PResult<CondExpr> {
        if self.is_p("!") || self.is_kw("not") {
            self.bump();
            self.enter()?;
            let r = self.cond_not();
            self.depth -= 1;
            return Ok(CondExpr::Not(Box::new(r?)));
        }
        self.cond_eq()
    }

    fn cond_eq(&mut self) -> PResult<CondExpr> {
        let mut l = self.cond_prim()?;
        loop {
            let op = if self.is_p("==") || self.is_kw("eq") {
                6
            } else if self.is_p("!=") {
                7
            } else {
                break;
            };
            self.bump();
            let r = self.cond_prim()?;
            l = CondExpr::Bin(op, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn cond_prim(&mut self) -> PResult<CondExpr> {
        if self.eat_p("(") {
            let e = self.cond_expr()?;
            self.expect_p(")")?;
            return Ok(e);
        }
        if self.is_p("!") || self.is_kw("not") {
            return self.cond_not();
        }
        Ok(CondExpr::Bool(self.ident()?))
    }

    fn constraint(&mut self, mls: bool, vt: bool, pos: Pos) -> PResult<Constraint> {
        let classes = self.names()?;
        let perms = if vt { None } else { Some(self.names()?) };
        let expr = self.cexpr()?;
        self.semi()?;
        Ok(Constraint {
            mls,
            validatetrans: vt,
            classes,
            perms,
            expr,
            pos,
        })
    }

    fn cexpr(&mut self) -> PResult<CExpr> {
        self.enter()?;
        let r = self.cexpr_or();
        self.depth -= 1;
        r
    }

    fn cexpr_or(&mut self) -> PResult<CExpr> {
        let mut l = self.cexpr_and()?;
        while self.is_p("||") || self.is_kw("or") {
            self.bump();
            let r = self.cexpr_and()?;
            l = CExpr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn cexpr_and(&mut self) -> PResult<CExpr> {
        let mut l = self.cexpr_not()?;
        while self.is_p("&&") || self.is_kw("and") {
            self.bump();
            let r = self.cexpr_not()?;
            l = CExpr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn cexpr_not(&mut self) -> PResult<CExpr> {
        if self.is_p("!") || self.is_kw("not") {
            self.bump();
            self.enter()?;
            let r = self.cexpr_not();
            self.depth -= 1;
            return Ok(CExpr::Not(Box::new(r?)));
        }
        if self.eat_p("(") {
            let e = self.cexpr()?;
            self.expect_p(")")?;
            return Ok(e);
        }
        self.cexpr_prim()
    }

    fn op(&mut self, mls_ops: bool) -> PResult<u32> {
        let op = match self.peek() {
            Tok::Punct("==") | Tok::Kw("eq") => CEXPR_EQ,
            Tok::Punct("!=") => CEXPR_NEQ,
            Tok::Kw("dom") if mls_ops => CEXPR_DOM,
            Tok::Kw("domby") if mls_ops => CEXPR_DOMBY,
            Tok::Kw("incomp") if mls_ops => CEXPR_INCOMP,
            _ => {
                return Err(self.unexpected(if mls_ops {
                    "`==`, `!=`, `dom`, `domby` or `incomp`"
                } else {
                    "`==` or `!=`"
                }));
            }
        };
        self.bump();
        Ok(op)
    }

    fn cexpr_prim(&mut self) -> PResult<CExpr> {
        let t = self.peek().clone();
        let Tok::Kw(k) = t else {
            return Err(self.unexpected("a constraint expression (u1, r1, t1, l1, h1, ...)"));
        };
        self.bump();
        let base = |k: &str| -> Option<u32> {
            Some(match k {
                "u1" => CEXPR_USER,
                "u2" => CEXPR_USER | CEXPR_TARGET,
                "u3" => CEXPR_USER | CEXPR_XTARGET,
                "r1" => CEXPR_ROLE,
                "r2" => CEXPR_ROLE | CEXPR_TARGET,
                "r3" => CEXPR_ROLE | CEXPR_XTARGET,
                "t1" => CEXPR_TYPE,
                "t2" => CEXPR_TYPE | CEXPR_TARGET,
                "t3" => CEXPR_TYPE | CEXPR_XTARGET,
                _ => return None,
            })
        };
        match k {
            "sameuser" => Ok(CExpr::Attr {
                attr: CEXPR_USER,
                op: CEXPR_EQ,
            }),
            "source" | "target" => {
                let tgt = if k == "target" { CEXPR_TARGET } else { 0 };
                let attr = if self.eat_kw("role") {
                    CEXPR_ROLE
                } else {
                    self.expect_kw("type")?;
                    CEXPR_TYPE
                };
                let names = self.names()?;
                Ok(CExpr::Names {
                    attr: attr | tgt,
                    op: CEXPR_EQ,
                    names,
                })
            }
            "role" => {
                let op = self.op(true)?;
                Ok(CExpr::Attr {
                    attr: CEXPR_ROLE,
                    op,
                })
            }
            "l1" | "h1" | "l2" => {
                let op = self.op(true)?;
                let rhs = match self.peek() {
                    Tok::Kw(r @ ("l2" | "h2" | "h1")) => *r,
                    _ => return Err(self.unexpected("`l2`, `h2` or `h1`")),
                };
                let attr = match (k, rhs) {
                    ("l1", "l2") => CEXPR_L1L2,
                    ("l1", "h2") => CEXPR_L1H2,
                    ("h1", "l2") => CEXPR_H1L2,
                    ("h1", "h2") => CEXPR_H1H2,
                    ("l1", "h1") => CEXPR_L1H1,
                    ("l2", "h2") => CEXPR_L2H2,
                    _ => {
                        return Err(self.unexpected(
                            "a valid level pair (l1 l2, l1 h2, h1 l2, h1 h2, l1 h1, l2 h2)",
                        ));
                    }
                };
                self.bump();
                Ok(CExpr::Attr { attr, op })
            }
            _ => {
                let Some(attr) = base(k) else {
                    return Err(Diagnostic::error(
                        Some(self.prev_pos),
                        format!("`{k}` cannot start a constraint expression"),
                    ));
                };
                let op = self.op(attr & CEXPR_ROLE != 0 && attr == CEXPR_ROLE)?;
                // u1 op u2 / r1 op r2 / t1 op t2
                let pair = match k {
                    "u1" => Some("u2"),
                    "r1" => Some("r2"),
                    "t1" => Some("t2"),
                    _ => None,
                };
                if let Some(p2) = pair
                    && self.is_kw(p2)
                {
                    self.bump();
                    return Ok(CExpr::Attr { attr, op });
                }
                if op > CEXPR_NEQ {
                    return Err(Diagnostic::error(
                        Some(self.pos()),
                        "`dom`, `domby` and `incomp` compare r1 with r2 only",
                    ));
                }
                let names = self.names()?;
                Ok(CExpr::Names { attr, op, names })
            }
        }
    }

    /// One TE/RBAC statement, or `None` if the next token does not start one.
    fn te_stmt(&mut self, in_cond: bool) -> PResult<Option<Te>> {
        let pos = self.pos();
        let Tok::Kw(k) = self.peek().clone() else {
            return Ok(None);
        };
        if in_cond
            && !matches!(
                k,
                "allow"
                    | "auditallow"
                    | "auditdeny"
                    | "dontaudit"
                    | "type_transition"
                    | "type_member"
                    | "type_change"
            )
        {
            return Err(Diagnostic::error(
                Some(pos),
                format!(
                    "`{k}` is not allowed inside a conditional block (only allow, auditallow, auditdeny, dontaudit and type rules are)"
                ),
            ));
        }
        let s = match k {
            "attribute" => {
                self.bump();
                let n = self.ident()?;
                self.semi()?;
                Te::Attribute(n)
            }
            "type" => {
                self.bump();
                let name = self.ident()?;
                let aliases = if self.eat_kw("alias") {
                    self.names()?.items.into_iter().map(|x| x.1).collect()
                } else {
                    Vec::new()
                };
                let attrs = if self.eat_p(",") {
                    self.id_comma_list()?
                } else {
                    Vec::new()
                };
                self.semi()?;
                Te::Type {
                    name,
                    aliases,
                    attrs,
                }
            }
            "typealias" => {
                self.bump();
                let name = self.ident()?;
                self.expect_kw("alias")?;
                let aliases = self.names()?.items.into_iter().map(|x| x.1).collect();
                self.semi()?;
                Te::TypeAlias { name, aliases }
            }
            "typeattribute" => {
                self.bump();
                let name = self.ident()?;
                let attrs = self.id_comma_list()?;
                self.semi()?;
                Te::TypeAttribute { name, attrs }
            }
            "typebounds" => {
                self.bump();
                let parent = self.ident()?;
                let children = self.id_comma_list()?;
                self.semi()?;
                Te::TypeBounds { parent, children }
            }
            "bool" => {
                self.bump();
                let name = self.ident()?;
                let value = if self.eat_kw("true") {
                    true
                } else if self.eat_kw("false") {
                    false
                } else {
                    return Err(self.unexpected("`true` or `false`"));
                };
                self.semi()?;
                Te::Bool { name, value }
            }
            "allow" | "auditallow" | "auditdeny" | "dontaudit" | "neverallow" => {
                self.bump();
                let kind = match k {
                    "allow" => AvKind::Allow,
                    "auditallow" => AvKind::AuditAllow,
                    "auditdeny" => AvKind::AuditDeny,
                    "dontaudit" => AvKind::DontAudit,
                    _ => AvKind::NeverAllow,
                };
                let src = self.names()?;
                let tgt = self.names()?;
                if kind == AvKind::Allow && self.is_p(";") && !in_cond {
                    self.bump();
                    return Ok(Some(Te::RoleAllow(Box::new(RoleAllow {
                        roles: src,
                        new: tgt,
                        pos,
                    }))));
                }
                self.expect_p(":")?;
                let classes = self.names()?;
                let perms = self.names()?;
                self.semi()?;
                Te::Av(Box::new(AvRule {
                    kind,
                    src,
                    tgt,
                    classes,
                    perms,
                    pos,
                }))
            }
            "type_transition" | "type_member" | "type_change" => {
                self.bump();
                let kind = match k {
                    "type_transition" => TypeRuleKind::Transition,
                    "type_member" => TypeRuleKind::Member,
                    _ => TypeRuleKind::Change,
                };
                let src = self.names()?;
                let tgt = self.names()?;
                self.expect_p(":")?;
                let classes = self.names()?;
                let new = self.ident()?;
                if let Tok::Path(_) = self.peek() {
                    return Err(Diagnostic::error(
                        Some(self.pos()),
                        "filename type transitions are not supported by the Xen target",
                    ));
                }
                self.semi()?;
                Te::TypeRule(Box::new(TypeRule {
                    kind,
                    src,
                    tgt,
                    classes,
                    new,
                    pos,
                }))
            }
            "range_transition" => {
                self.bump();
                let src = self.names()?;
                let tgt = self.names()?;
                let classes = if self.eat_p(":") {
                    Some(self.names()?)
                } else {
                    None
                };
                let range = self.range()?;
                self.semi()?;
                Te::RangeTrans(Box::new(RangeTrans {
                    src,
                    tgt,
                    classes,
                    range,
                    pos,
                }))
            }
            "permissive" => {
                self.bump();
                let n = self.ident()?;
                self.semi()?;
                Te::Permissive(n)
            }
            "policycap" => {
                self.bump();
                let n = self.ident()?;
                self.semi()?;
                Te::Policycap(n)
            }
            "role" => {
                self.bump();
                let name = self.ident()?;
                if self.eat_kw("types") {
                    let types = self.names()?;
                    self.semi()?;
                    Te::RoleTypes { name, types }
                } else {
                    if self.is_p(",") {
                        return Err(Diagnostic::error(
                            Some(self.pos()),
                            "role attributes are not supported by policy-compiler",
                        ));
                    }
                    self.semi()?;
                    Te::Role { name }
                }
            }
            "role_transition" => {
                self.bump();
                let roles = self.names()?;
                let types = self.names()?;
                let classes = if self.eat_p(":") {
                    Some(self.names()?)
                } else {
                    None
                };
                let new = self.ident()?;
                self.semi()?;
                Te::RoleTrans(Box::new(RoleTrans {
                    roles,
                    types,
                    classes,
                    new,
                    pos,
                }))
            }
            "if" => {
                self.bump();
                let expr = self.cond_expr()?;
                self.expect_p("{")?;
                let mut then = Vec::new();
                while !self.is_p("}") {
                    match self.te_stmt(true)? {
                        Some(s) => then.push(s),
                        None => {
                            return Err(self.unexpected("a rule or `}` in the conditional block"));
                        }
                    }
                }
                self.bump();
                let mut els = Vec::new();
                if self.eat_kw("else") {
                    self.expect_p("{")?;
                    while !self.is_p("}") {
                        match self.te_stmt(true)? {
                            Some(s) => els.push(s),
                            None => return Err(self.unexpected("a rule or `}` in the else block")),
                        }
                    }
                    self.bump();
                }
                Te::Cond {
                    expr,
                    then,
                    els,
                    pos,
                }
            }
            "tunable" | "optional" | "require" | "attribute_role" | "roleattribute"
            | "expandattribute" | "dominance" | "allowxperm" | "auditallowxperm"
            | "dontauditxperm" | "neverallowxperm" => {
                return Err(Diagnostic::error(
                    Some(pos),
                    format!(
                        "`{k}` is not supported by policy-compiler (the Xen target does not use it)"
                    ),
                ));
            }
            _ => return Ok(None),
        };
        Ok(Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Result<Policy, String> {
        let t = Text::from_file(src.as_bytes().to_vec(), 0);
        parse(&t).map_err(|e| e.0[0].msg.clone())
    }

    const HEAD: &str = "class c\nsid k\nclass c { p q }\n";

    #[test]
    fn minimal_policy() {
        let pol = p(&format!(
            "{HEAD}type t; allow t self:c {{ p q }}; role r types t; user u roles r; sid k u:r:t\npirqcon 3 u:r:t\n"
        ))
        .unwrap();
        assert_eq!(pol.te.len(), 3);
        assert_eq!(pol.ocons.len(), 1);
    }

    #[test]
    fn sets_and_conditionals() {
        let pol = p(&format!(
            "{HEAD}type t; bool b true; if (!b && b == b || b) {{ allow {{ t -t {{ t }} }} ~t:c *; }} else {{ dontaudit t t:c p; }} user u roles r; sid k u:r:t\n"
        ))
        .unwrap();
        let Te::Cond { then, els, .. } = &pol.te[2] else {
            panic!()
        };
        assert_eq!((then.len(), els.len()), (1, 1));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            "{HEAD}type t; bool b true; if ({}b{}) {{ }} user u roles r; sid k u:r:t\n",
            "(".repeat(300),
            ")".repeat(300)
        );
        assert!(p(&deep).unwrap_err().contains("nesting deeper"));
        let deep = format!(
            "{HEAD}type t; allow {}t{} t:c p; user u roles r; sid k u:r:t\n",
            "{ ".repeat(300),
            " }".repeat(300)
        );
        assert!(p(&deep).unwrap_err().contains("nesting deeper"));
    }

    #[test]
    fn errors_are_precise() {
        let e = p(&format!("{HEAD}type t1; user u roles r; sid k u:r:t\n")).unwrap_err();
        assert!(
            e.contains("expected an identifier, found keyword `t1`"),
            "{e}"
        );
        let e = p(&format!("{HEAD}type t\nuser u roles r; sid k u:r:t\n")).unwrap_err();
        assert!(e.contains("expected `;`"), "{e}");
        let e = p(&format!(
            "{HEAD}type t; user u roles r; allow t t:c p; sid k u:r:t\n"
        ))
        .unwrap_err();
        assert!(e.contains("found keyword `allow`"), "{e}");
        let e = p(&format!(
            "{HEAD}type t; if (b) {{ type x; }} user u roles r; sid k u:r:t\n"
        ))
        .unwrap_err();
        assert!(e.contains("not allowed inside a conditional"), "{e}");
    }
}
