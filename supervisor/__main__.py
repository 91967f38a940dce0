"""python -m supervisor: pyinit."""

from .init import main

main()
