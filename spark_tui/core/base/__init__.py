"""The shared base every room may use: errors, paths, atomic files, lazy imports, run-folder names.

It imports nothing from the other rooms.
"""
