"""Fleet-scale regression: replay and compare many bags as Ray tasks (``seg-perception fleet``)."""
