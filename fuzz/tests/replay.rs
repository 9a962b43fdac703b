//! Replays every input kept for the fuzz targets (corpus, hand-written seeds,
//! regressions, and any local libFuzzer artifact) through the same functions
//! the libFuzzer binaries call: a plain `cargo test`, on stable, without
//! libFuzzer.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

/// Where inputs are kept, under `fuzz/`, each with one folder per target.
const KEPT: [&str; 4] = ["corpus", "seeds", "regressions", "artifacts"];

/// Runs `target` on every file kept for `name`; fails with the list of inputs
/// that panicked.
fn replay(name: &str, target: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = KEPT
        .iter()
        .filter_map(|kept| fs::read_dir(root.join(kept).join(name)).ok())
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no input kept for {name}");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            panic::catch_unwind(|| target(&data))
                .err()
                .map(|_| path.display().to_string())
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{name}: {} of {} inputs failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    println!("{name}: {} inputs replayed", files.len());
}

#[test]
fn request_parser() {
    replay("request_parser", protoplex_fuzz::request_parser);
}

#[test]
fn filter() {
    replay("filter", protoplex_fuzz::filter);
}

#[test]
fn http_router() {
    replay("http_router", protoplex_fuzz::http_router);
}

#[test]
fn mqtt_packets() {
    replay("mqtt_packets", protoplex_fuzz::mqtt_packets);
}
