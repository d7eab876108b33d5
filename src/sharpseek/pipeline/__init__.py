"""The pipeline: what is up to date (the ledger), the ingest and index planners and the stages
the CLI and the Prefect flows call."""
