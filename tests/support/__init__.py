"""Test helpers: fake handlers, readers of a run's output, canned quality rows and local service stand-ins."""
