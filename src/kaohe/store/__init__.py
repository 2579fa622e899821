"""Storage: SQLAlchemy 2 models, Alembic migrations, engine set-up, backup and restore.

SQLite file by default (WAL mode); PostgreSQL when ``KAOHE_DATABASE_URL`` says so.
The store holds aggregate counts per org unit, period and variable — never
records about individual people.
"""
