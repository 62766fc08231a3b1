"""capture.scan — scans and PDFs taken in: probe, lossless PDF/A conversion with OCR, text.

Public modules: :mod:`capture.scan.probe` (cheap checks before archiving),
:mod:`capture.scan.convert` (PDF/A-2b with an OCR text layer) and :mod:`capture.scan.proof`
(the proof that it is pixel-identical to the source).
"""
