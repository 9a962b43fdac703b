//! libFuzzer entry point of the `mqtt_packets` target: see [`protoplex_fuzz::mqtt_packets`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| protoplex_fuzz::mqtt_packets(data));
