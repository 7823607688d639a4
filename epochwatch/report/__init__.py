"""Rendering runs and their findings: summary.py builds plain dicts, text.py and json.py
write them to any file object. No analysis here."""
