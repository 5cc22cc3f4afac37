#!/usr/bin/env python3
"""Print every record layout (field, type, offset, size). Same as ``hftshm layouts``."""

from hftshm.cli.layouts import format_layout
from hftshm.transport.layout import all_layouts

if __name__ == "__main__":
    for layout in all_layouts():
        print(format_layout(layout))
