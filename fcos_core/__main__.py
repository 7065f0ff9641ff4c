"""``python -m fcos_core ...`` is the ``fcos`` command (when the console script is not on PATH)."""

from fcos_core.engine.cli import main

if __name__ == "__main__":
    main()
