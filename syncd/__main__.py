"""`python -m syncd`: the same as the `syncd` console script."""

from syncd.cli import main

main()
