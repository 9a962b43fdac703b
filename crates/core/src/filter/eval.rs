//! Plain recursive evaluation of a validated filter on one document.
//!
//! Used for `select` sub-filters and, in tests, as the reference the
//! indexed matcher is checked against.

use super::parse::Node;
use super::path::Doc;

/// Whether `doc` matches `node`.
pub(crate) fn eval(node: &Node, doc: &Doc<'_>) -> bool {
    match node {
        Node::All => true,
        Node::Nothing => false,
        Node::Leaf(atom) => atom.eval(doc),
        Node::Not(inner) => !eval(inner, doc),
        Node::And(children) => children.iter().all(|c| eval(c, doc)),
        Node::Or(children) => children.iter().any(|c| eval(c, doc)),
    }
}
