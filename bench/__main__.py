"""`python -m bench` runs the same CLI as the `bench` console script."""

from bench.cli.app import main

main()
