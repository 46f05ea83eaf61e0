"""`python -m advisor` runs the CLI."""

from advisor.cli.main import main

main()
