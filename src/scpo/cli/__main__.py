"""``python -m scpo.cli`` runs the ``scpo`` command line."""

from . import main

main()
