"""epochwatch: per-epoch tracing of TensorFlow/Keras training.

Importing this package is cheap and has no side effects; `import epochwatch.hook`
is what attaches to training.
"""

__version__ = "0.1.0"
