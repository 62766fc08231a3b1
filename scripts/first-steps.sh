#!/usr/bin/env bash
# Printed by `make run` before the server starts: how to deposit a first document.
set -euo pipefail
cd "$(dirname "$0")/.."
token=$(.venv/bin/coffre token create --role admin --name "first-steps-$(date +%s)")
port="${COFFRE_PORT:-8000}"
cat <<TXT

Coffre is starting on http://127.0.0.1:${port} (embedded default: data in ${COFFRE_DATA_DIR:-./coffre-data}).
An admin API token was created for you (shown once):

  export COFFRE_TOKEN=${token}

Deposit a first PDF over HTTP:

  curl -sS -H "Authorization: Bearer \$COFFRE_TOKEN" -F file=@invoice.pdf -F kind=supplier_invoice \\
       http://127.0.0.1:${port}/api/v1/documents

or from the command line, then check it:

  .venv/bin/coffre deposit invoice.pdf
  .venv/bin/coffre verify DOCUMENT_ID

Scans (TIFF, PNG, JPEG, image PDFs) and e-invoices go through the capture intake; the
server's embedded worker converts them to PDF/A with OCR and reads their fields:

  curl -sS -H "Authorization: Bearer \$COFFRE_TOKEN" -H "Idempotency-Key: scan-1" \\
       -F file=@scan.tiff -F station=mailroom http://127.0.0.1:${port}/api/v1/captures
  .venv/bin/coffre ingest scans/            # or a folder, with a progress bar
  .venv/bin/coffre watch /srv/scans/station-1 --station station-1

A tax auditor: .venv/bin/coffre auditor grant --name NAME --company SIREN --year 2026 \\
  --expires 2027-06-30, then http://127.0.0.1:${port}/audit with the token it prints.

TXT
