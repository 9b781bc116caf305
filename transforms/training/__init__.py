"""The training side: generated rows -> training rows (export) and fine-tuning on them."""
