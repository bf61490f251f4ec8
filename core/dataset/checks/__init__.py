"""Dataset checks before export: decontamination (`decontam`), near-duplicates (`neardup`), semantic
duplicates and leaks (`semantic`, `semantic_preview`), execution of each example with its tests
(`execution`, running in core.sandbox), their stored verdicts (`results`), what the checks exclude
(`exclusions`), analytics (`analytics`), benchmark loaders (`benchmarks`) and the background run of
the Dataset page (`start`). `examples` is the shared view of the generated examples with reviewer
edits applied."""
