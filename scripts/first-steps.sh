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

TXT
