"""`python -m apucodec ...` runs the CLI (handy where the console script is not on PATH)."""

from apucodec.cli.main import main

main()
