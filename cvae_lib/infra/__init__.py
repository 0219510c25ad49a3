"""What the lessons and the classroom both stand on, depending on nothing above it: the
notebook set-up and the course's switches (``runtime``), and files that are never half-written,
the cache folder, its locks and a fair share of the cores (``storage``).
"""
