"""Command-line interface (typer). Thin wrappers: parse options, call one library function, hand the result to the sink."""
