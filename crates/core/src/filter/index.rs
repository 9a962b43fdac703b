//! The indexed matcher of one index/collection pair.
//!
//! Filters are stored as their AND-clauses ("subfilters"), each shared by
//! every filter holding it; subfilters reference conditions ("atoms"),
//! each shared by every subfilter using it. Atoms are indexed per field
//! (equality by value hash, ranges in an interval tree, geo shapes in a
//! grid, regexps in a list), so matching a document:
//! 1. finds the true atoms by looking each indexed field up once;
//! 2. counts, per subfilter, its true positive literals; a subfilter whose
//!    count reaches its number of positive literals matches if none of its
//!    negated atoms is true;
//! 3. subfilters made only of negated literals (and `{}`) match unless one
//!    of their atoms is true.
//!
//! The cost follows the number of true atoms and of their subfilters, not
//! the number of stored filters. Per-call scratch tables live in a
//! thread-local and are reset in O(1) with an epoch counter.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::FilterId;
use super::atom::Atom;
use super::geo;
use super::grid::GeoIndex;
use super::interval::IntervalIndex;
use super::normalize::{AtomDef, Dnf, lit_atom, lit_negated};
use super::path::{Doc, FieldPath};
use super::scalar_map::ScalarMap;

const NOT_LISTED: usize = usize::MAX;

#[derive(Debug)]
struct AtomSlot {
    def: AtomDef,
    /// Field index slot (`None` for document-level atoms).
    field: Option<u32>,
    /// Number of subfilters using the atom.
    users: u32,
}

/// Matching-time data of an atom, kept apart from the cold parts.
#[derive(Debug, Default)]
struct AtomHot {
    /// Subfilters holding this atom positively.
    pos_subs: IdList,
    /// Negation-only subfilters holding this atom (negated).
    neg_only_subs: IdList,
}

#[derive(Debug)]
struct SubSlot {
    key: Box<str>,
    /// Literals as (atom slot, negated).
    lits: Box<[(u32, bool)]>,
    n_pos: u32,
    /// Position in the negation-only list, or `NOT_LISTED`.
    neg_only_pos: usize,
}

/// Matching-time data of a subfilter.
#[derive(Debug, Default)]
struct SubHot {
    n_pos: u32,
    /// Atoms held negated (only for subfilters with a positive literal).
    neg_atoms: Box<[u32]>,
    /// Filters holding this subfilter.
    filters: IdList,
}

#[derive(Debug)]
struct FilterSlot {
    subs: Box<[u32]>,
}

/// A list of ids, stored inline while it holds a single one.
#[derive(Debug, Default)]
enum IdList {
    #[default]
    Empty,
    One(u32),
    Many(Vec<u32>),
}

impl IdList {
    fn as_slice(&self) -> &[u32] {
        match self {
            IdList::Empty => &[],
            IdList::One(x) => std::slice::from_ref(x),
            IdList::Many(v) => v,
        }
    }

    fn push(&mut self, x: u32) {
        *self = match std::mem::take(self) {
            IdList::Empty => IdList::One(x),
            IdList::One(y) => IdList::Many(vec![y, x]),
            IdList::Many(mut v) => {
                v.push(x);
                IdList::Many(v)
            }
        };
    }

    fn remove(&mut self, x: u32) {
        match self {
            IdList::Empty => {}
            IdList::One(y) => {
                if *y == x {
                    *self = IdList::Empty;
                }
            }
            IdList::Many(v) => {
                swap_remove_value(v, x);
                match v.as_slice() {
                    [] => *self = IdList::Empty,
                    [one] => *self = IdList::One(*one),
                    _ => {}
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, IdList::Empty)
    }
}

/// Grows `v` so that index `i` exists, and returns that element.
fn slot_mut<T: Default>(v: &mut Vec<T>, i: u32) -> &mut T {
    let i = i as usize;
    if v.len() <= i {
        v.resize_with(i + 1, T::default);
    }
    &mut v[i]
}

#[derive(Debug)]
struct FieldIndex {
    path: FieldPath,
    atoms: usize,
    exists: Option<u32>,
    equals: ScalarMap,
    array_has: ScalarMap,
    ranges: IntervalIndex,
    regexps: Vec<(u32, regex::Regex)>,
    geo: GeoIndex,
    selects: Vec<u32>,
}

/// A slab: slots reused through a free list.
#[derive(Debug)]
struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, v: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(v);
                i
            }
            None => {
                self.slots.push(Some(v));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }
    fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.slots.get_mut(i as usize)?.take();
        if v.is_some() {
            self.free.push(i);
        }
        v
    }
    fn get(&self, i: u32) -> Option<&T> {
        self.slots.get(i as usize)?.as_ref()
    }
    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.slots.get_mut(i as usize)?.as_mut()
    }
    fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// Stored filters of one index/collection pair.
#[derive(Debug, Default)]
pub(crate) struct Collection {
    atoms: Slab<AtomSlot>,
    atom_hot: Vec<AtomHot>,
    sub_hot: Vec<SubHot>,
    filter_ids: Vec<Option<FilterId>>,
    atom_ids: HashMap<Box<str>, u32>,
    subs: Slab<SubSlot>,
    sub_ids: HashMap<Box<str>, u32>,
    neg_only: Vec<u32>,
    filters: Slab<FilterSlot>,
    fields: Slab<FieldIndex>,
    field_ids: HashMap<Box<str>, u32>,
    doc_atoms: Vec<u32>,
    live_filters: usize,
}

fn swap_remove_value(v: &mut Vec<u32>, x: u32) {
    if let Some(p) = v.iter().position(|&e| e == x) {
        v.swap_remove(p);
    }
}

impl Collection {
    pub(crate) fn is_empty(&self) -> bool {
        self.live_filters == 0
    }

    /// Stores a filter; returns its slot.
    pub(crate) fn add(&mut self, id: FilterId, dnf: &Dnf) -> u32 {
        let slot = self.filters.insert(FilterSlot { subs: Box::new([]) });
        *slot_mut(&mut self.filter_ids, slot) = Some(id);
        let mut subs = Vec::with_capacity(dnf.clauses.len());
        let mut key = String::new();
        for clause in &dnf.clauses {
            key.clear();
            dnf.write_clause(&mut key, clause);
            let sid = match self.sub_ids.get(key.as_str()) {
                Some(&sid) => sid,
                None => self.add_sub(&key, dnf, clause),
            };
            slot_mut(&mut self.sub_hot, sid).filters.push(slot);
            subs.push(sid);
        }
        if let Some(f) = self.filters.get_mut(slot) {
            f.subs = subs.into_boxed_slice();
        }
        self.live_filters += 1;
        slot
    }

    fn add_sub(&mut self, key: &str, dnf: &Dnf, clause: &[u32]) -> u32 {
        let lits: Vec<(u32, bool)> = clause
            .iter()
            .map(|&l| (self.acquire_atom(&dnf.atoms[lit_atom(l)]), lit_negated(l)))
            .collect();
        let n_pos = lits.iter().filter(|(_, neg)| !neg).count();
        let neg_atoms: Box<[u32]> = lits.iter().filter(|(_, neg)| *neg).map(|(a, _)| *a).collect();
        let sid = self.subs.insert(SubSlot {
            key: key.into(),
            lits: lits.clone().into_boxed_slice(),
            n_pos: u32::try_from(n_pos).unwrap_or(u32::MAX),
            neg_only_pos: NOT_LISTED,
        });
        *slot_mut(&mut self.sub_hot, sid) = SubHot {
            n_pos: u32::try_from(n_pos).unwrap_or(u32::MAX),
            neg_atoms: if n_pos > 0 { neg_atoms } else { Box::new([]) },
            filters: IdList::Empty,
        };
        for &(a, neg) in &lits {
            let hot = slot_mut(&mut self.atom_hot, a);
            if !neg {
                hot.pos_subs.push(sid);
            } else if n_pos == 0 {
                hot.neg_only_subs.push(sid);
            }
        }
        if n_pos == 0 {
            if let Some(s) = self.subs.get_mut(sid) {
                s.neg_only_pos = self.neg_only.len();
            }
            self.neg_only.push(sid);
        }
        self.sub_ids.insert(key.into(), sid);
        sid
    }

    fn acquire_atom(&mut self, def: &AtomDef) -> u32 {
        if let Some(&a) = self.atom_ids.get(&def.key) {
            if let Some(slot) = self.atoms.get_mut(a) {
                slot.users += 1;
            }
            return a;
        }
        let a = self.atoms.insert(AtomSlot {
            def: def.clone(),
            field: None,
            users: 1,
        });
        *slot_mut(&mut self.atom_hot, a) = AtomHot::default();
        self.atom_ids.insert(def.key.clone(), a);
        let field = def.atom.field().map(|f| self.index_atom(f, &def.atom, a));
        match field {
            Some(fid) => {
                if let Some(slot) = self.atoms.get_mut(a) {
                    slot.field = Some(fid);
                }
            }
            None => self.doc_atoms.push(a),
        }
        a
    }

    /// Files an atom under its field; returns the field slot.
    fn index_atom(&mut self, path: &FieldPath, atom: &Atom, a: u32) -> u32 {
        let fid = match self.field_ids.get(path.as_str()) {
            Some(&f) => f,
            None => {
                let f = self.fields.insert(FieldIndex {
                    path: path.clone(),
                    atoms: 0,
                    exists: None,
                    equals: ScalarMap::default(),
                    array_has: ScalarMap::default(),
                    ranges: IntervalIndex::default(),
                    regexps: Vec::new(),
                    geo: GeoIndex::default(),
                    selects: Vec::new(),
                });
                self.field_ids.insert(path.as_str().into(), f);
                f
            }
        };
        if let Some(field) = self.fields.get_mut(fid) {
            field.atoms += 1;
            match atom {
                Atom::Equals(_, s) => field.equals.insert(s, a),
                Atom::Exists(_) => field.exists = Some(a),
                Atom::ArrayHas(_, s) => field.array_has.insert(s, a),
                Atom::Range(_, r) => field.ranges.insert(r, a),
                Atom::Regexp(_, p) => field.regexps.push((a, p.regex.clone())),
                Atom::Geo(_, shape) => field.geo.insert(shape, a),
                Atom::Select(..) => field.selects.push(a),
                Atom::Match(_) => {}
            }
        }
        fid
    }

    fn release_atom(&mut self, a: u32) {
        let Some(slot) = self.atoms.get_mut(a) else { return };
        slot.users -= 1;
        if slot.users > 0 {
            return;
        }
        let Some(slot) = self.atoms.remove(a) else { return };
        self.atom_ids.remove(&slot.def.key);
        let Some(fid) = slot.field else {
            swap_remove_value(&mut self.doc_atoms, a);
            return;
        };
        let Some(field) = self.fields.get_mut(fid) else {
            return;
        };
        match &slot.def.atom {
            Atom::Equals(_, s) => field.equals.remove(s),
            Atom::Exists(_) => field.exists = None,
            Atom::ArrayHas(_, s) => field.array_has.remove(s),
            Atom::Range(..) => field.ranges.remove(a),
            Atom::Regexp(..) => {
                if let Some(p) = field.regexps.iter().position(|(id, _)| *id == a) {
                    field.regexps.swap_remove(p);
                }
            }
            Atom::Geo(..) => field.geo.remove(a),
            Atom::Select(..) => swap_remove_value(&mut field.selects, a),
            Atom::Match(_) => {}
        }
        field.atoms -= 1;
        if field.atoms == 0 {
            self.field_ids.remove(field.path.as_str());
            self.fields.remove(fid);
        }
    }

    /// Removes a stored filter by slot.
    pub(crate) fn remove(&mut self, slot: u32) {
        let Some(filter) = self.filters.remove(slot) else {
            return;
        };
        if let Some(id) = self.filter_ids.get_mut(slot as usize) {
            *id = None;
        }
        self.live_filters -= 1;
        for &sid in filter.subs.iter() {
            let Some(hot) = self.sub_hot.get_mut(sid as usize) else {
                continue;
            };
            hot.filters.remove(slot);
            if !hot.filters.is_empty() {
                continue;
            }
            *hot = SubHot::default();
            let Some(sub) = self.subs.remove(sid) else {
                continue;
            };
            self.sub_ids.remove(&sub.key);
            if sub.neg_only_pos != NOT_LISTED {
                self.neg_only.swap_remove(sub.neg_only_pos);
                if let Some(&moved) = self.neg_only.get(sub.neg_only_pos)
                    && let Some(m) = self.subs.get_mut(moved)
                {
                    m.neg_only_pos = sub.neg_only_pos;
                }
            }
            for &(a, neg) in sub.lits.iter() {
                if let Some(hot) = self.atom_hot.get_mut(a as usize) {
                    if !neg {
                        hot.pos_subs.remove(sid);
                    } else if sub.n_pos == 0 {
                        hot.neg_only_subs.remove(sid);
                    }
                }
                self.release_atom(a);
            }
        }
    }

    /// Number of stored atoms (distinct conditions) and subfilters.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.atom_ids.len(), self.sub_ids.len())
    }

    /// The ids of the stored filters matching `doc`.
    pub(crate) fn test(&self, doc: &Doc<'_>, out: &mut Vec<FilterId>) {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.run(doc, &mut scratch, out),
            Err(_) => self.run(doc, &mut Scratch::default(), out),
        });
    }

    fn run(&self, doc: &Doc<'_>, s: &mut Scratch, out: &mut Vec<FilterId>) {
        s.begin(
            self.atoms.capacity(),
            self.subs.capacity(),
            self.filters.capacity(),
        );
        let epoch = s.epoch;
        let mut true_atoms = std::mem::take(&mut s.true_atoms);
        true_atoms.clear();
        {
            let marks = &mut s.atom_mark;
            let mut mark = |a: u32| {
                let m = &mut marks[a as usize];
                if *m != epoch {
                    *m = epoch;
                    true_atoms.push(a);
                }
            };
            for field in self.fields.slots.iter().flatten() {
                let Some(v) = doc.get(&field.path) else { continue };
                if let Some(a) = field.exists {
                    mark(a);
                }
                if !field.equals.is_empty()
                    && let Some(a) = field.equals.get(v)
                {
                    mark(a);
                }
                match v {
                    Value::Array(items) if !field.array_has.is_empty() => {
                        for item in items {
                            if let Some(a) = field.array_has.get(item) {
                                mark(a);
                            }
                        }
                    }
                    Value::Number(n) if !field.ranges.is_empty() => {
                        if let Some(x) = n.as_f64() {
                            field.ranges.query(x, &mut mark);
                        }
                    }
                    Value::String(text) => {
                        for (a, re) in &field.regexps {
                            if re.is_match(text) {
                                mark(*a);
                            }
                        }
                    }
                    _ => {}
                }
                if !field.geo.is_empty()
                    && let Some(p) = geo::to_point(v)
                {
                    field.geo.query(p, &mut mark);
                }
                for &a in &field.selects {
                    if self
                        .atoms
                        .get(a)
                        .is_some_and(|slot| slot.def.atom.eval_value(Some(v)))
                    {
                        mark(a);
                    }
                }
            }
            for &a in &self.doc_atoms {
                if self.atoms.get(a).is_some_and(|slot| slot.def.atom.eval(doc)) {
                    mark(a);
                }
            }
        }
        for &a in &true_atoms {
            let Some(hot) = self.atom_hot.get(a as usize) else {
                continue;
            };
            for &sid in hot.pos_subs.as_slice() {
                let Some(sub) = self.sub_hot.get(sid as usize) else {
                    continue;
                };
                if sub.n_pos > 1 {
                    let counter = &mut s.sub_count[sid as usize];
                    let count = if (*counter >> 32) as u32 == epoch {
                        (*counter as u32) + 1
                    } else {
                        1
                    };
                    *counter = (u64::from(epoch) << 32) | u64::from(count);
                    if count != sub.n_pos {
                        continue;
                    }
                }
                if sub.neg_atoms.iter().all(|&n| s.atom_mark[n as usize] != epoch) {
                    self.emit(sub, epoch, &mut s.filter_mark, out);
                }
            }
            for &sid in hot.neg_only_subs.as_slice() {
                s.sub_kill[sid as usize] = epoch;
            }
        }
        for &sid in &self.neg_only {
            if s.sub_kill[sid as usize] != epoch
                && let Some(sub) = self.sub_hot.get(sid as usize)
            {
                self.emit(sub, epoch, &mut s.filter_mark, out);
            }
        }
        s.true_atoms = true_atoms;
    }

    fn emit(&self, sub: &SubHot, epoch: u32, filter_mark: &mut [u32], out: &mut Vec<FilterId>) {
        for &f in sub.filters.as_slice() {
            let m = &mut filter_mark[f as usize];
            if *m != epoch {
                *m = epoch;
                if let Some(Some(id)) = self.filter_ids.get(f as usize) {
                    out.push(id.clone());
                }
            }
        }
    }
}

/// Per-thread scratch tables of the matcher.
#[derive(Default)]
struct Scratch {
    epoch: u32,
    atom_mark: Vec<u32>,
    true_atoms: Vec<u32>,
    /// `epoch << 32 | count` per subfilter.
    sub_count: Vec<u64>,
    sub_kill: Vec<u32>,
    filter_mark: Vec<u32>,
}

impl Scratch {
    fn begin(&mut self, atoms: usize, subs: usize, filters: usize) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped around: stale marks could collide, clear them.
            self.atom_mark.fill(0);
            self.sub_count.fill(0);
            self.sub_kill.fill(0);
            self.filter_mark.fill(0);
            self.epoch = 1;
        }
        if self.atom_mark.len() < atoms {
            self.atom_mark.resize(atoms, 0);
        }
        if self.sub_count.len() < subs {
            self.sub_count.resize(subs, 0);
            self.sub_kill.resize(subs, 0);
        }
        if self.filter_mark.len() < filters {
            self.filter_mark.resize(filters, 0);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}
