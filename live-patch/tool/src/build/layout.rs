//! Data-layout comparison from DWARF type information: a live patch must not
//! change the layout of a type whose values already exist (in statics, on
//! the heap, in other CPUs' frames), because old and new code would then
//! read the same bytes differently.
//!
//! The image carries only line tables (`debug = 1`), and a build with full
//! type information is not byte-identical to it, so `livepatch build` makes
//! one more build of each tree with `debug = 2` for this check only.

use crate::{Error, Result};
use gimli::{AttributeValue, EndianSlice, LittleEndian};
use object::{Object, ObjectSection};
use std::collections::BTreeMap;

/// A type's layout: size, alignment and its fields (name, offset, type name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLayout {
    pub size: u64,
    pub align: Option<u64>,
    pub fields: Vec<(String, u64, String)>,
}

type R<'a> = EndianSlice<'a, LittleEndian>;

fn name_of(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    e: &gimli::DebuggingInformationEntry<R<'_>>,
) -> Option<String> {
    let v = e.attr_value(gimli::DW_AT_name)?;
    let s = dwarf.attr_string(unit, v).ok()?;
    Some(String::from_utf8_lossy(s.slice()).into_owned())
}

fn udata(e: &gimli::DebuggingInformationEntry<R<'_>>, at: gimli::DwAt) -> Option<u64> {
    e.attr_value(at).and_then(|v| v.udata_value())
}

fn type_name(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    e: &gimli::DebuggingInformationEntry<R<'_>>,
) -> String {
    match e.attr_value(gimli::DW_AT_type) {
        Some(AttributeValue::UnitRef(off)) => unit
            .entry(off)
            .ok()
            .and_then(|t| name_of(dwarf, unit, &t).or_else(|| Some(format!("{}", t.tag()))))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Fields of a struct/union/enum DIE, variant parts included (prefixed).
fn fields(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    node: gimli::EntriesTreeNode<'_, '_, R<'_>>,
    prefix: &str,
    out: &mut Vec<(String, u64, String)>,
) -> gimli::Result<()> {
    let mut children = node.children();
    while let Some(child) = children.next()? {
        let e = child.entry();
        match e.tag() {
            gimli::DW_TAG_member => {
                let n = name_of(dwarf, unit, e).unwrap_or_default();
                let off = udata(e, gimli::DW_AT_data_member_location).unwrap_or(0);
                out.push((format!("{prefix}{n}"), off, type_name(dwarf, unit, e)));
            }
            gimli::DW_TAG_variant_part | gimli::DW_TAG_variant => {
                let p = match udata(e, gimli::DW_AT_discr_value) {
                    Some(d) => format!("{prefix}[{d}]."),
                    None => prefix.to_string(),
                };
                fields(dwarf, unit, child, &p, out)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn walk(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    node: gimli::EntriesTreeNode<'_, '_, R<'_>>,
    path: &mut Vec<String>,
    out: &mut BTreeMap<String, TypeLayout>,
) -> gimli::Result<()> {
    let e = node.entry();
    let tag = e.tag();
    let name = name_of(dwarf, unit, e);
    let is_type = matches!(
        tag,
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_enumeration_type
    );
    let scope = is_type || tag == gimli::DW_TAG_namespace;
    if is_type
        && e.attr_value(gimli::DW_AT_declaration).is_none()
        && let (Some(n), Some(size)) = (&name, udata(e, gimli::DW_AT_byte_size))
    {
        let q = if path.is_empty() {
            n.clone()
        } else {
            format!("{}::{n}", path.join("::"))
        };
        // Closure environments and impl-local names are numbered by
        // position: not an identity across builds.
        if !q.contains('{') {
            let align = udata(e, gimli::DW_AT_alignment);
            let mut f = Vec::new();
            fields(dwarf, unit, node, "", &mut f)?;
            out.entry(q).or_insert(TypeLayout {
                size,
                align,
                fields: f,
            });
            return Ok(());
        }
    }
    if scope {
        path.push(name.unwrap_or_else(|| "{anon}".into()));
    }
    let mut children = node.children();
    while let Some(child) = children.next()? {
        walk(dwarf, unit, child, path, out)?;
    }
    if scope {
        path.pop();
    }
    Ok(())
}

/// Every named struct, union and enum of an ELF with DWARF, by qualified name.
pub fn layouts(elf: &[u8]) -> Result<BTreeMap<String, TypeLayout>> {
    let file = object::File::parse(elf).map_err(|e| Error(format!("DWARF build: {e}")))?;
    let dwarf = gimli::Dwarf::load(|id| -> std::result::Result<R<'_>, gimli::Error> {
        let data = file
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        Ok(EndianSlice::new(data, LittleEndian))
    })
    .map_err(|e| Error(format!("DWARF: {e}")))?;
    let mut out = BTreeMap::new();
    let mut units = dwarf.units();
    let derr = |e: gimli::Error| Error(format!("DWARF: {e}"));
    while let Some(h) = units.next().map_err(derr)? {
        let unit = dwarf.unit(h).map_err(derr)?;
        let mut tree = unit.entries_tree(None).map_err(derr)?;
        let root = tree.root().map_err(derr)?;
        walk(&dwarf, &unit, root, &mut Vec::new(), &mut out).map_err(derr)?;
    }
    if out.is_empty() {
        return Err(Error("the DWARF build has no type information".into()));
    }
    Ok(out)
}

/// Types present in both whose layout differs, described.
pub fn changed(a: &BTreeMap<String, TypeLayout>, b: &BTreeMap<String, TypeLayout>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, la) in a {
        let Some(lb) = b.get(name) else { continue };
        if la == lb {
            continue;
        }
        let why = if la.size != lb.size {
            format!("size {} -> {} bytes", la.size, lb.size)
        } else if la.align != lb.align {
            format!("alignment {:?} -> {:?}", la.align, lb.align)
        } else {
            let fa: Vec<_> = la
                .fields
                .iter()
                .map(|f| format!("{}@{}: {}", f.0, f.1, f.2))
                .collect();
            let fb: Vec<_> = lb
                .fields
                .iter()
                .map(|f| format!("{}@{}: {}", f.0, f.1, f.2))
                .collect();
            let gone: Vec<_> = fa.iter().filter(|x| !fb.contains(x)).cloned().collect();
            let new: Vec<_> = fb.iter().filter(|x| !fa.contains(x)).cloned().collect();
            format!("fields [{}] -> [{}]", gone.join(", "), new.join(", "))
        };
        out.push(format!("changed data layout: {name} ({why})"));
    }
    out
}
