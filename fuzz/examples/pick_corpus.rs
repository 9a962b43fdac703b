//! Picks a small corpus from a libFuzzer merge control file: the inputs of the
//! merge's output folder (the seeds) count as kept, then, greedily, the input
//! adding the most features not yet covered (the smaller one on a tie) until
//! `max` inputs are picked or none adds any. Prints the picked paths, one a
//! line, and a summary on stderr. Used by `fuzz/minimize.sh`.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example pick_corpus -- CONTROL_FILE 500
//! ```

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(control), Some(max)) = (
        args.first(),
        args.get(1).and_then(|max| max.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: pick_corpus CONTROL_FILE MAX_INPUTS");
        return ExitCode::FAILURE;
    };
    let text = match std::fs::read_to_string(control) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("{control}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut lines = text.lines();
    let count = lines
        .next()
        .and_then(|line| line.parse::<usize>().ok())
        .unwrap_or(0);
    let initial = lines
        .next()
        .and_then(|line| line.parse::<usize>().ok())
        .unwrap_or(0);
    let files: Vec<&str> = lines.by_ref().take(count).collect();
    let mut features: HashMap<usize, HashSet<u64>> = HashMap::new();
    for line in lines {
        let mut parts = line.split_ascii_whitespace();
        if parts.next() != Some("FT") {
            continue;
        }
        let Some(index) = parts.next().and_then(|index| index.parse::<usize>().ok()) else {
            continue;
        };
        features.insert(index, parts.filter_map(|feature| feature.parse().ok()).collect());
    }
    let total = features.values().flatten().collect::<HashSet<_>>().len();
    let mut covered: HashSet<u64> = HashSet::new();
    for index in 0..initial {
        covered.extend(features.remove(&index).unwrap_or_default());
    }
    let sizes: Vec<u64> = files
        .iter()
        .map(|path| std::fs::metadata(path).map_or(u64::MAX, |metadata| metadata.len()))
        .collect();
    let size = |index: usize| sizes.get(index).copied().unwrap_or(u64::MAX);
    let mut picked = Vec::new();
    while picked.len() < max {
        let best = features
            .iter()
            .map(|(&index, set)| {
                (
                    set.difference(&covered).count(),
                    std::cmp::Reverse(size(index)),
                    index,
                )
            })
            .max();
        let Some((_, _, index)) = best.filter(|(gain, _, _)| *gain > 0) else {
            break;
        };
        covered.extend(features.remove(&index).unwrap_or_default());
        picked.push(index);
    }
    for index in &picked {
        if let Some(path) = files.get(*index) {
            println!("{path}");
        }
    }
    eprintln!(
        "picked {} inputs: with the {initial} seeds, {} of {total} features",
        picked.len(),
        covered.len()
    );
    ExitCode::SUCCESS
}
