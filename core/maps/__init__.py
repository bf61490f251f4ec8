"""The map: UMAP layout, clusters and their names, lasso areas, the embed-and-map background run."""
