//! Cross-protocol tests of protoplex live in `tests/`; this library holds what
//! they share.
