// Koncorde's test() on the workload written by
// `cargo run --release -p protoplex-micro-benches --example koncorde_side_by_side -- DIR`.
// Usage: node compare.js DIR   (koncorde installed with npm next to this file or in NODE_PATH)
"use strict";

const fs = require("fs");
const path = require("path");
const { Koncorde } = require("koncorde");

const dir = process.argv[2];
const filters = JSON.parse(fs.readFileSync(path.join(dir, "filters.json")));
const documents = JSON.parse(fs.readFileSync(path.join(dir, "documents.json")));
const index = "bench/items";

const koncorde = new Koncorde({ maxConditions: 0 });
const ids = new Set();
for (const filter of filters) {
  ids.add(koncorde.register(filter, index));
}

let matches = 0;
for (const document of documents) {
  matches += koncorde.test(document, index).length;
}
const started = process.hrtime.bigint();
for (const document of documents) {
  koncorde.test(document, index);
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({
  engine: "koncorde",
  filters: filters.length,
  distinct: ids.size,
  documents: documents.length,
  matches_per_document: Number((matches / documents.length).toFixed(1)),
  documents_per_second: Math.round(documents.length / seconds),
}));
