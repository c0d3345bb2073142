"""The session domain: the model, ids, the name rules every store applies, and the store protocol."""
