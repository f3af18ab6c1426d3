"""The `loyalty` command line: a thin shell over the library."""
