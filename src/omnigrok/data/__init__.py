"""Dataset I/O: reading, checking and embedding the paper's real datasets (MNIST, IMDb, QM9).

The tasks in ``omnigrok/tasks/`` turn these arrays into training data; nothing here trains.
"""
