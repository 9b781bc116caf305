"""Composite transforms, DoFns, model handlers and sinks of embedgen, one module per stage."""
