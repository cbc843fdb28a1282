"""Sphinx configuration: markdown pages (MyST) plus the API reference from docstrings."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join("..", "src")))

project = "otdiv"
author = "otdiv developers"
release = "0.1.0"
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "figures/*.py", "figures/**/*.md"]  # figure outputs, not pages
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
html_theme = "alabaster"
suppress_warnings = ["myst.header"]
