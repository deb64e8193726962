"""Render the README's performance table from a ``softargmax bench --json`` file.

    python benchmarks/readme_table.py results.json > table.md
"""

import sys

from softargmax.bench import render_markdown

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: readme_table.py RESULTS.json")
    print(render_markdown(sys.argv[1]))
