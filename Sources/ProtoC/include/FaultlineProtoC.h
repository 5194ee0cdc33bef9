// Filled by scripts/generate-protos.
