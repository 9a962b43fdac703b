//! Normalization: a validated [`Node`] tree becomes a canonical disjunctive
//! normal form (an OR of AND-clauses of possibly negated conditions).
//!
//! - negations are pushed down to the conditions (De Morgan);
//! - conditions are deduplicated and numbered in the order of their
//!   canonical text, so equal conditions get equal numbers;
//! - clauses are sorted, deduplicated, and dropped when contradictory
//!   (e.g. `a = 1 AND a = 2`, `x AND NOT x`, `range(a) AND missing(a)`);
//!   literals implied by another one on the same field are removed;
//! - clauses absorbed by a smaller one are removed, and pairs of clauses
//!   differing only by the sign of one condition are merged.
//!
//! The result does not depend on the order of `and`/`or` operands.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::atom::{Atom, Scalar, write_str};
use super::error::FilterError;
use super::parse::Node;

/// Maximum number of AND-clauses of a normalized filter.
pub(crate) const MAX_CLAUSES: usize = 4096;

/// A condition and its canonical text.
#[derive(Debug, Clone)]
pub(crate) struct AtomDef {
    pub(crate) key: Box<str>,
    pub(crate) atom: Atom,
}

/// A literal: `atom_number << 1 | negated`.
pub(crate) type Lit = u32;

pub(crate) fn lit_atom(l: Lit) -> usize {
    (l >> 1) as usize
}

pub(crate) fn lit_negated(l: Lit) -> bool {
    l & 1 == 1
}

/// A filter in canonical disjunctive normal form.
#[derive(Debug, Clone)]
pub(crate) struct Dnf {
    /// Conditions, sorted by canonical text.
    pub(crate) atoms: Vec<AtomDef>,
    /// Sorted clauses of sorted literals. No clause: matches nothing; one
    /// empty clause: matches everything.
    pub(crate) clauses: Vec<Vec<Lit>>,
}

impl Dnf {
    /// Canonical text of the whole filter.
    pub(crate) fn canonical(&self) -> String {
        let mut out = String::new();
        for c in &self.clauses {
            self.write_clause(&mut out, c);
        }
        out
    }

    /// Canonical text of one clause.
    pub(crate) fn write_clause(&self, out: &mut String, clause: &[Lit]) {
        out.push('(');
        for &l in clause {
            out.push(if lit_negated(l) { '-' } else { '+' });
            write_str(out, &self.atoms[lit_atom(l)].key);
        }
        out.push(')');
    }
}

type Result<T> = std::result::Result<T, FilterError>;

/// Negation normal form over interned atoms.
enum Nnf {
    True,
    False,
    Lit(Lit),
    And(Vec<Nnf>),
    Or(Vec<Nnf>),
}

/// Normalizes a validated filter.
pub(crate) fn normalize(node: &Node) -> Result<Dnf> {
    let mut interner = Interner::default();
    let nnf = interner.nnf(node, false);
    // Renumber atoms in the order of their canonical text.
    let mut order: Vec<usize> = (0..interner.atoms.len()).collect();
    order.sort_by(|&a, &b| interner.atoms[a].key.cmp(&interner.atoms[b].key));
    let mut renumber = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        renumber[old] = u32::try_from(new).unwrap_or(u32::MAX);
    }
    let mut slots: Vec<Option<AtomDef>> = interner.atoms.into_iter().map(Some).collect();
    let atoms: Vec<AtomDef> = order.iter().filter_map(|&old| slots[old].take()).collect();
    let nnf = remap(nnf, &renumber);
    let ctx = Ctx { atoms: &atoms };
    let clauses = ctx.dnf(&nnf)?;
    let clauses = ctx.finish(clauses);
    Ok(Dnf { atoms, clauses })
}

/// Canonical text of a filter (used for `select` sub-filters).
pub(crate) fn canonical_key(node: &Node) -> Result<String> {
    Ok(normalize(node)?.canonical())
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    atoms: Vec<AtomDef>,
}

impl Interner {
    fn intern(&mut self, atom: &Atom) -> u32 {
        let key = atom.key();
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = u32::try_from(self.atoms.len()).unwrap_or(u32::MAX);
        self.ids.insert(key.clone(), id);
        self.atoms.push(AtomDef {
            key: key.into(),
            atom: atom.clone(),
        });
        id
    }

    fn nnf(&mut self, node: &Node, negated: bool) -> Nnf {
        match (node, negated) {
            (Node::All, false) | (Node::Nothing, true) => Nnf::True,
            (Node::All, true) | (Node::Nothing, false) => Nnf::False,
            (Node::Leaf(a), neg) => Nnf::Lit(self.intern(a) << 1 | u32::from(neg)),
            (Node::Not(inner), neg) => self.nnf(inner, !neg),
            (Node::And(v), false) | (Node::Or(v), true) => {
                Nnf::And(v.iter().map(|n| self.nnf(n, negated)).collect())
            }
            (Node::Or(v), false) | (Node::And(v), true) => {
                Nnf::Or(v.iter().map(|n| self.nnf(n, negated)).collect())
            }
        }
    }
}

fn remap(n: Nnf, renumber: &[u32]) -> Nnf {
    match n {
        Nnf::Lit(l) => Nnf::Lit(renumber[lit_atom(l)] << 1 | (l & 1)),
        Nnf::And(v) => Nnf::And(v.into_iter().map(|c| remap(c, renumber)).collect()),
        Nnf::Or(v) => Nnf::Or(v.into_iter().map(|c| remap(c, renumber)).collect()),
        other => other,
    }
}

struct Ctx<'a> {
    atoms: &'a [AtomDef],
}

impl Ctx<'_> {
    fn dnf(&self, n: &Nnf) -> Result<Vec<Vec<Lit>>> {
        match n {
            Nnf::True => Ok(vec![Vec::new()]),
            Nnf::False => Ok(Vec::new()),
            Nnf::Lit(l) => Ok(vec![vec![*l]]),
            Nnf::Or(children) => {
                let mut out = Vec::new();
                for c in children {
                    out.extend(self.dnf(c)?);
                    if out.len() > MAX_CLAUSES * 4 {
                        out = reduce(out);
                        check_size(out.len())?;
                    }
                }
                let out = reduce(out);
                check_size(out.len())?;
                Ok(out)
            }
            Nnf::And(children) => {
                let mut acc: Vec<Vec<Lit>> = vec![Vec::new()];
                for c in children {
                    let rhs = self.dnf(c)?;
                    if acc.len().saturating_mul(rhs.len()) > MAX_CLAUSES * 16 {
                        return Err(FilterError::TooManyClauses { max: MAX_CLAUSES });
                    }
                    let mut next = Vec::with_capacity(acc.len() * rhs.len());
                    for a in &acc {
                        for b in &rhs {
                            let mut merged = Vec::with_capacity(a.len() + b.len());
                            merged.extend_from_slice(a);
                            merged.extend_from_slice(b);
                            if let Some(c) = self.simplify(merged) {
                                next.push(c);
                            }
                        }
                    }
                    acc = reduce(next);
                    check_size(acc.len())?;
                    if acc.is_empty() {
                        break;
                    }
                }
                Ok(acc)
            }
        }
    }

    /// Sorts a clause and applies the per-field rules; `None` when the
    /// clause can never hold.
    fn simplify(&self, mut clause: Vec<Lit>) -> Option<Vec<Lit>> {
        clause.sort_unstable();
        clause.dedup();
        if clause.windows(2).any(|w| w[0] >> 1 == w[1] >> 1) {
            return None;
        }
        // Group literal positions by field.
        let mut by_field: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, &l) in clause.iter().enumerate() {
            let Some(f) = self.atoms[lit_atom(l)].atom.field() else {
                continue;
            };
            match by_field.iter_mut().find(|(name, _)| *name == f.as_str()) {
                Some((_, v)) => v.push(i),
                None => by_field.push((f.as_str(), vec![i])),
            }
        }
        let mut drop = vec![false; clause.len()];
        for (_, positions) in &by_field {
            if positions.len() < 2 {
                continue;
            }
            if !self.field_rules(&clause, positions, &mut drop) {
                return None;
            }
        }
        let mut i = 0;
        clause.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
        Some(clause)
    }

    /// Applies the rules of one field; false when contradictory.
    fn field_rules(&self, clause: &[Lit], positions: &[usize], drop: &mut [bool]) -> bool {
        let atom = |i: usize| &self.atoms[lit_atom(clause[i])].atom;
        let positive = |i: usize| !lit_negated(clause[i]);
        // 1. `equals x` fixes the value: every other literal is decided.
        if let Some(&anchor) = positions
            .iter()
            .find(|&&i| positive(i) && matches!(atom(i), Atom::Equals(..)))
        {
            let Atom::Equals(_, x) = atom(anchor) else {
                return true;
            };
            let value = scalar_value(x);
            for &i in positions {
                if i == anchor {
                    continue;
                }
                let holds = atom(i).eval_value(Some(&value)) != lit_negated(clause[i]);
                if !holds {
                    return false;
                }
                drop[i] = true;
            }
            return true;
        }
        // 2. `missing`: every other condition on the field is false.
        if let Some(&anchor) = positions
            .iter()
            .find(|&&i| !positive(i) && matches!(atom(i), Atom::Exists(_)))
        {
            for &i in positions {
                if i == anchor {
                    continue;
                }
                if positive(i) {
                    return false;
                }
                drop[i] = true;
            }
            return true;
        }
        // 3. `exists` is implied by any other positive condition.
        let other_positive = positions
            .iter()
            .any(|&i| positive(i) && !matches!(atom(i), Atom::Exists(_)));
        // 4. An array value test means the field is an array.
        let is_array = positions
            .iter()
            .any(|&i| positive(i) && matches!(atom(i), Atom::ArrayHas(..)));
        for &i in positions {
            match atom(i) {
                Atom::Exists(_) if positive(i) && other_positive => drop[i] = true,
                Atom::Equals(..) | Atom::Range(..) | Atom::Regexp(..) if is_array => {
                    if positive(i) {
                        return false;
                    }
                    drop[i] = true;
                }
                _ => {}
            }
        }
        true
    }

    /// Final canonical pass: complementary merge, absorption, sorting.
    fn finish(&self, clauses: Vec<Vec<Lit>>) -> Vec<Vec<Lit>> {
        let mut clauses = reduce(clauses);
        for _ in 0..64 {
            let set: HashSet<&[Lit]> = clauses.iter().map(Vec::as_slice).collect();
            let mut resolvents = Vec::new();
            let mut probe = Vec::new();
            for c in &clauses {
                for i in 0..c.len() {
                    probe.clear();
                    probe.extend_from_slice(c);
                    probe[i] ^= 1;
                    if set.contains(probe.as_slice()) {
                        let mut r = c.clone();
                        r.remove(i);
                        if let Some(r) = self.simplify(r) {
                            resolvents.push(r);
                        }
                    }
                }
            }
            if resolvents.is_empty() {
                break;
            }
            clauses.extend(resolvents);
            clauses = reduce(clauses);
        }
        clauses.sort();
        clauses
    }
}

fn check_size(n: usize) -> Result<()> {
    if n > MAX_CLAUSES {
        return Err(FilterError::TooManyClauses { max: MAX_CLAUSES });
    }
    Ok(())
}

fn scalar_value(s: &Scalar) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Scalar::Str(s) => Value::String(s.to_string()),
    }
}

/// Deduplicates clauses and removes those absorbed by a smaller one
/// (`A OR (A AND B)` is `A`).
fn reduce(mut clauses: Vec<Vec<Lit>>) -> Vec<Vec<Lit>> {
    clauses.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    clauses.dedup();
    if clauses.first().is_some_and(Vec::is_empty) {
        return vec![Vec::new()];
    }
    let mut kept: Vec<Vec<Lit>> = Vec::with_capacity(clauses.len());
    for c in clauses {
        if !kept.iter().any(|k| k.len() < c.len() && is_subset(k, &c)) {
            kept.push(c);
        }
    }
    kept
}

/// Whether sorted `small` is included in sorted `big`.
fn is_subset(small: &[Lit], big: &[Lit]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}
