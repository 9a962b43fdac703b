//! Hash lookup of condition ids by scalar value (strict typing).

use std::collections::HashMap;

use serde_json::Value;

use super::atom::Scalar;
use super::geo::norm_bits;

#[derive(Debug, Clone, Default)]
pub(crate) struct ScalarMap {
    strings: HashMap<Box<str>, u32>,
    numbers: HashMap<u64, u32>,
    booleans: [Option<u32>; 2],
    null: Option<u32>,
    len: usize,
}

impl ScalarMap {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id stored for the scalar held by a document value.
    pub(crate) fn get(&self, v: &Value) -> Option<u32> {
        match v {
            Value::String(s) => self.strings.get(s.as_str()).copied(),
            Value::Number(n) => self.numbers.get(&norm_bits(n.as_f64()?)).copied(),
            Value::Bool(b) => self.booleans[usize::from(*b)],
            Value::Null => self.null,
            Value::Array(_) | Value::Object(_) => None,
        }
    }

    pub(crate) fn insert(&mut self, s: &Scalar, id: u32) {
        let previous = match s {
            Scalar::Str(k) => self.strings.insert(k.clone(), id),
            Scalar::Num(n) => self.numbers.insert(norm_bits(*n), id),
            Scalar::Bool(b) => self.booleans[usize::from(*b)].replace(id),
            Scalar::Null => self.null.replace(id),
        };
        if previous.is_none() {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, s: &Scalar) {
        let previous = match s {
            Scalar::Str(k) => self.strings.remove(&**k),
            Scalar::Num(n) => self.numbers.remove(&norm_bits(*n)),
            Scalar::Bool(b) => self.booleans[usize::from(*b)].take(),
            Scalar::Null => self.null.take(),
        };
        if previous.is_some() {
            self.len -= 1;
        }
    }
}
