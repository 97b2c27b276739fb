"""Features: snapshot tables, the Feast store, training sets, online vectors, quality checks."""
