//! libFuzzer entry point of the `request_parser` target: see [`protoplex_fuzz::request_parser`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protoplex_fuzz::request_parser(data));
