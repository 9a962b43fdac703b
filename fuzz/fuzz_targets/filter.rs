//! libFuzzer entry point of the `filter` target: see [`protoplex_fuzz::filter`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protoplex_fuzz::filter(data));
