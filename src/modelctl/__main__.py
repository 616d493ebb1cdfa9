"""`python -m modelctl`."""

from modelctl.cli import main

main()
