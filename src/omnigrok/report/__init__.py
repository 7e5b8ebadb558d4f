"""What the pages use: curves to numbers (``metrics``), numbers to a verdict (``verdict``),
figures (``plots``), the paper's settings beside ours (``paper``), page helpers (``page``),
exports (``export``), the README's chapters table (``readme``), the comparison with the
authors' code (``official``) and the stored speed measurement (``speed``). Nothing here trains.
"""
