"""capture.scan — scans and PDFs taken in: probe, lossless PDF/A conversion with OCR, text.

Public modules: :mod:`capture.scan.probe` (cheap checks before archiving) and
:mod:`capture.scan.convert` (PDF/A-2b with an OCR text layer, proven pixel-identical).
"""
