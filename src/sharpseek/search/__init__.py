"""Search: the vector index (embedded or Qdrant server), the searcher, its baselines, the
look-alike flare outlook and the retrieval evaluations."""
