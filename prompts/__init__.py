"""Prompt templates (jinja2), shipped as package data."""
