"""For child processes of the tests: `import pynvml` gives the suite's fake (fake_pynvml.py).

Python runs this at start-up when this folder is on PYTHONPATH (tests/fakes/__init__.py
`with_fake_nvml`), so the hook's NVML sampler imports the fake exactly as it would import
the real library: production code has no switch for it.
"""

import sys

from tests.fakes import fake_pynvml

sys.modules["pynvml"] = fake_pynvml
