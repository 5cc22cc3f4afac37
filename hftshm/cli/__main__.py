"""``python -m hftshm.cli``: the same as the ``hftshm`` command."""

from hftshm.cli import main

main()
