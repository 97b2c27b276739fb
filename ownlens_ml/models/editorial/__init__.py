"""Editorial models: articles, authors, topics."""
