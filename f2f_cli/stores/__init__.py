"""Session stores: SQL, Redis, dual and the wrappers around them, and the copy engine between them."""
