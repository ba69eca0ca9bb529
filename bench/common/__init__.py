"""The common base every layer stands on: data root and caches, dataset and weight-file registries,
command-line conventions (`UserError`, exit code 2), atomic writes, downloads, training utilities and
the distributed set-up. It imports no other project package (checked by import-linter, see README)."""
