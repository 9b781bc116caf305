"""The quality stage: per-row checks, language identification, near-duplicates, embedding checks, CheckQuality."""
