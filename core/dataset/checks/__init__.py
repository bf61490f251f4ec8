"""Dataset checks before export: decontamination (`decontam`), near-duplicates (`neardup`),
sandboxed execution (`sandbox`, `execution`), their stored verdicts (`results`), analytics
(`analytics`) and benchmark loaders (`benchmarks`). `examples` is the shared view of the
generated examples with reviewer edits applied."""
