"""Database backends: provision (a given URL or a throwaway server), check capacity, seed the dataset.

One module per backend (`postgres`, ...); nothing is imported here so that a backend's driver is only
needed when that backend is used.
"""
