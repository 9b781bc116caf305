"""The quality stage: per-row checks, language identification, near-duplicate removal, embedding checks, CheckQuality."""
