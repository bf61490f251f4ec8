"""Selection: the k most diverse snippets (k-center greedy) and their coverage against random picks."""
