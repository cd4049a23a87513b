"""Fuzz targets: hypothesis over the product's own splitting, rendering and reasoning split."""
