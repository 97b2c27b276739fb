"""Editorial models: article performance and trending topics."""
