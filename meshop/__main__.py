"""``python -m meshop``: the same as the ``meshop`` command."""

from .cli import main

main()
