"""Users and access: argon2 password hashes, sessions, API tokens, roles and the
permission checks every page and API route goes through."""
