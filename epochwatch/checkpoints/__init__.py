"""Checkpoint files seen from the outside: which files make up a save, their content hash
(computed off the training thread), and the versions a file says it was written with.

Nothing here imports TensorFlow or Keras: the hook's saving integration hands plain paths
to these helpers, and the analysis reads what they wrote into the trace.
"""
