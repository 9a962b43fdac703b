//! libFuzzer entry point of the `http_router` target: see [`protoplex_fuzz::http_router`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protoplex_fuzz::http_router(data));
