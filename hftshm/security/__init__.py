"""Security: JWT tokens, roles and their permissions, hashed client secrets."""
