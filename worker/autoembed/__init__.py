"""autoembed: database-driven automatic embeddings for PostgreSQL and Supabase."""

__version__ = "0.1.0"
