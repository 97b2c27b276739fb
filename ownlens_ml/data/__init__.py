"""Platform data: the synthetic generator, the importer, bulk loading and profiling."""
