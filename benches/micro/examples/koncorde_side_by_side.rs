//! Filter matching side by side with Koncorde: writes the workload (filters and
//! documents, as JSON) for `benches/koncorde/compare.js`, then measures
//! protoplex's matcher on the very same workload and prints documents/s.
//!
//! `cargo run --release -p protoplex-micro-benches --example koncorde_side_by_side -- DIR [FILTERS] [DOCUMENTS]`

use std::time::Instant;

use protoplex_core::filter::FilterEngine;
use protoplex_micro_benches::filters::{COLLECTION, INDEX, documents, filters};

const SEED: u64 = 42;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .ok_or("usage: koncorde_side_by_side DIR [FILTERS] [DOCUMENTS]")?,
    );
    let filter_count: usize = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let document_count: usize = args.next().map_or(Ok(20_000), |n| n.parse())?;

    let filters = filters(filter_count, SEED);
    let documents = documents(document_count, SEED);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("filters.json"), serde_json::to_vec(&filters)?)?;
    std::fs::write(dir.join("documents.json"), serde_json::to_vec(&documents)?)?;

    let mut engine = FilterEngine::new(0);
    for filter in &filters {
        let normalized = engine.normalize(INDEX, COLLECTION, filter)?;
        engine.store(normalized);
    }
    let mut matches = 0;
    // Warm-up pass, then the measured pass.
    for document in &documents {
        matches += engine.test(INDEX, COLLECTION, document, None).len();
    }
    let started = Instant::now();
    for document in &documents {
        std::hint::black_box(engine.test(INDEX, COLLECTION, document, None));
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"engine\":\"protoplex\",\"filters\":{filter_count},\"distinct\":{},\"documents\":{document_count},\"matches_per_document\":{:.1},\"documents_per_second\":{:.0}}}",
        engine.len(),
        matches as f64 / document_count as f64,
        document_count as f64 / elapsed
    );
    Ok(())
}
