"""autoembed: database-driven automatic embeddings for PostgreSQL and Supabase."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("autoembed")  # the one version string: pyproject.toml's
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
