//! Entry points shared by the cargo-fuzz targets (xsm/fuzz) and the corpus
//! replay test, so that `cargo test` runs exactly what the fuzzers ran.

use alloc::string::String;
use alloc::vec::Vec;

use crate::policydb::PolicyDb;
use crate::services::{self, CondState, SidKind};

/// Loads `data` as a policy; if it loads, computes decisions and labels for
/// every (initial SID, initial SID, class) and every boolean flipped, and
/// round-trips every initial SID context through text.
pub fn exercise_policy(data: &[u8]) -> bool {
    let Ok(db) = PolicyDb::from_bytes(data) else {
        return false;
    };
    let _ = crate::definition::check(&db);
    let ctxs: Vec<_> = db
        .ocontexts
        .isids
        .iter()
        .map(|(_, c)| c.clone())
        .take(6)
        .collect();
    let mut states = Vec::new();
    states.push(CondState::new(&db));
    if !db.bools.is_empty() {
        states.push(CondState::with_bools(
            &db,
            db.bools.iter().map(|b| !b.state).collect(),
        ));
    }
    for cs in &states {
        for s in &ctxs {
            for t in &ctxs {
                for class in 1..=db.classes.len() as u32 {
                    let _ = services::compute_av(&db, cs, s, t, class);
                    for k in [SidKind::Create, SidKind::Member, SidKind::Relabel] {
                        let _ = services::compute_sid(&db, cs, s, t, class, k);
                    }
                }
            }
        }
    }
    for c in &ctxs {
        let text: String = services::context_to_string(&db, c);
        let back = services::parse_context(&db, text.as_bytes());
        assert_eq!(back.as_ref(), Ok(c), "context {text} does not round-trip");
    }
    true
}

static MLS: &[u8] = include_bytes!("../fuzz/seeds/mls30.bin");
static BASE: &[u8] = include_bytes!("../fuzz/seeds/base30.bin");

/// Parses `data` as a context in an MLS and a non-MLS policy; what parses
/// must format back to a string that parses to the same context.
pub fn exercise_context(data: &[u8]) {
    static DBS: spin::Once<[PolicyDb; 2]> = spin::Once::new();
    let dbs = DBS.call_once(|| {
        [MLS, BASE].map(|p| match PolicyDb::from_bytes(p) {
            Ok(db) => db,
            Err(e) => panic!("seed policy does not load: {e}"),
        })
    });
    for db in dbs {
        if let Ok(c) = services::parse_context(db, data) {
            let text = services::context_to_string(db, &c);
            assert_eq!(
                services::parse_context(db, text.as_bytes()),
                Ok(c),
                "{text}"
            );
        }
    }
}
