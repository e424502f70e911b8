"""Reading the corpus (generated or ingested) for training and evaluation."""
