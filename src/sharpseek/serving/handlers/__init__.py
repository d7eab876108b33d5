"""The TorchServe handlers, shipped inside the package:
:func:`sharpseek.serving.archives.build_archives` copies these files into every model archive
(found with importlib.resources), and TorchServe imports them from the archive, where
``base_handler.py`` sits beside the model's handler (hence their ``from base_handler import ...``).
They are handler scripts, not modules to import from sharpseek.
"""
