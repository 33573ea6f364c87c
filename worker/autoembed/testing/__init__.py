"""Test and benchmark helpers that ship with autoembed (an OpenAI-compatible stub server)."""
