"""Contraceptive supplies (避孕药具): an append-only stock ledger and a public finder
of distribution points (shared/spec/supplies.md)."""
