"""SQL access shared by every part of f2f: tables, engines, schema migrations."""
