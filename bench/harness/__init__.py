"""Parts of the side-by-side benchmark: receivers, processes and their CPU, Redis counters."""
